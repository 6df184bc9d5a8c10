//! A finished execution and its exact JSON encoding.

use std::fmt::Write as _;

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::{MetricSet, RequestId, SessionId, keys};

/// `2021-02-20T00:21:54.867231`: UTC, microseconds, no zone designator.
const TIME_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]");

/// Formats a point in time as the payload's `time` key does.
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIME_FORMAT)
        .expect("the format only has components every UTC date has")
}

/// Reads a payload's `time` (`YYYY-MM-DDTHH:MM:SS[.fraction]`, UTC, no zone, up to nine
/// fraction digits) as seconds since the Unix epoch and nanoseconds. Written by hand, once for
/// every reader: the bridge and the series store both run it per payload on their hot paths, and
/// the format is fixed. Impossible dates (February 30th) and leap seconds are refused.
pub fn parse_time(s: &str) -> Option<(i64, u32)> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            let mut n = 0u32;
            for c in digits {
                if !c.is_ascii_digit() {
                    return None;
                }
                n = n * 10 + u32::from(c - b'0');
            }
            n * 10u32.pow(9 - digits.len() as u32)
        }
        _ => return None,
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hour * 3600 + minute * 60 + second, nanos))
}

/// Which algorithm version an execution ran.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlgorithmRef {
    pub owner: String,
    pub name: String,
    pub version: String,
}

impl AlgorithmRef {
    /// `owner/name`: the default Kafka message key, and the label used in metrics.
    pub fn path(&self) -> String {
        format!("{}/{}", self.owner, self.name)
    }
}

/// How an execution ended, for the opt-in `status` / `error_type` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutionStatus {
    Success,
    Error { error_type: String },
}

/// One execution's Insights payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub algorithm: AlgorithmRef,
    pub session_id: SessionId,
    pub request_id: RequestId,
    pub duration_milliseconds: u64,
    /// When the execution started.
    pub time: OffsetDateTime,
    pub metrics: MetricSet,
    /// `Some` only for versions that opted into the `status` / `error_type` keys.
    pub status: Option<ExecutionStatus>,
    /// Whether the execution failed, known whether or not the version opted into the status
    /// keys: the series of failures counts it. Not part of the JSON.
    pub failed: bool,
}

impl Payload {
    /// The exact JSON object: the reported metrics first, in the order they were first reported,
    /// then the operational keys in the order of Algorithmia's documented example, compact.
    /// `status` (and `error_type`, on failures) come last when the version opted in.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256 + self.metrics.bytes() * 2);
        out.push('{');
        for (key, value) in self.metrics.iter() {
            push_str(&mut out, key);
            out.push(':');
            write!(out, "{value}").expect("writing to a String cannot fail");
            out.push(',');
        }
        push_key(&mut out, keys::DURATION_MILLISECONDS);
        write!(out, "{}", self.duration_milliseconds).expect("writing to a String cannot fail");
        out.push(',');
        push_key(&mut out, keys::ALGORITHM_VERSION);
        push_str(&mut out, &self.algorithm.version);
        out.push(',');
        push_key(&mut out, keys::REQUEST_ID);
        push_str(&mut out, self.request_id.as_str());
        out.push(',');
        push_key(&mut out, keys::TIME);
        push_str(&mut out, &format_time(self.time));
        out.push(',');
        push_key(&mut out, keys::ALGORITHM_NAME);
        push_str(&mut out, &self.algorithm.name);
        out.push(',');
        push_key(&mut out, keys::SESSION_ID);
        push_str(&mut out, self.session_id.as_str());
        out.push(',');
        push_key(&mut out, keys::ALGORITHM_OWNER);
        push_str(&mut out, &self.algorithm.owner);
        match &self.status {
            None => {}
            Some(ExecutionStatus::Success) => {
                out.push(',');
                push_key(&mut out, keys::STATUS);
                out.push_str("\"success\"");
            }
            Some(ExecutionStatus::Error { error_type }) => {
                out.push(',');
                push_key(&mut out, keys::STATUS);
                out.push_str("\"error\",");
                push_key(&mut out, keys::ERROR_TYPE);
                push_str(&mut out, error_type);
            }
        }
        out.push('}');
        out
    }
}

/// Appends `"key":` (the keys are plain ASCII: no escaping needed).
fn push_key(out: &mut String, key: &str) {
    out.push('"');
    out.push_str(key);
    out.push_str("\":");
}

/// Appends `s` as a JSON string literal, byte for byte as serde_json writes it.
fn push_str(out: &mut String, s: &str) {
    // JSON escapes only `"`, `\` and the control characters below U+0020 (serde_json escapes
    // exactly those, nothing else). Names, ids and times almost never hold one: they are copied
    // as they are, without the String that serde_json::to_string allocates per field (its
    // escaping was the background lane's largest single cost in a profile).
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&serde_json::to_string(s).expect("a str always serializes"));
    } else {
        out.push('"');
        out.push_str(s);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetricValue;
    use time::macros::datetime;

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        let mut samples: Vec<String> = [
            "",
            "plain",
            "quote\"inside",
            "back\\slash",
            "tab\there",
            "nul\u{0}",
            "del\u{7f}",
            "unit\u{1f}sep",
            "space ",
            "ünïcödé",
            "emoji 🦀",
            "line\nbreak",
            "\u{2028}",
        ]
        .map(String::from)
        .to_vec();
        // Every character below 0x80, alone and between others.
        samples.extend((0u8..0x80).map(|b| format!("a{}b", b as char)));
        for s in samples {
            let mut out = String::new();
            push_str(&mut out, &s);
            assert_eq!(out, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn times_read_back_what_format_time_writes_and_refuse_impossible_ones() {
        for t in [
            datetime!(2021-02-20 00:21:54.867231 UTC),
            datetime!(1969-12-31 23:59:59.999999 UTC),
            datetime!(2024-02-29 12:00:00 UTC),
        ] {
            let (secs, nanos) = parse_time(&format_time(t)).unwrap();
            assert_eq!((secs, nanos), (t.unix_timestamp(), t.nanosecond()));
        }
        assert_eq!(parse_time("1970-01-01T00:00:00.000000001"), Some((0, 1)));
        assert_eq!(parse_time("1970-01-01T00:00:01.5"), Some((1, 500_000_000)));
        for bad in [
            "2023-02-29T12:00:00",
            "2021-02-30T00:00:00",
            "2021-02-20T24:00:00",
            "2021-02-20T00:00:60",
            "2021-02-20 00:00:00",
            "2021-02-20T00:00:00Z",
            "2021-02-20T00:00:00.",
            "2021-02-20T00:00:00.1234567890",
            "2021-13-01T00:00:00",
            "yesterday",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    fn payload() -> Payload {
        let mut metrics = MetricSet::new();
        metrics
            .insert(
                "risk_score",
                MetricValue::from(serde_json::Number::from_f64(0.2).unwrap()),
            )
            .unwrap();
        metrics.insert("approved", 1.into()).unwrap();
        Payload {
            algorithm: AlgorithmRef {
                owner: "asli".into(),
                name: "credit_card_approval".into(),
                version: "1.0.6".into(),
            },
            session_id: SessionId::new(),
            request_id: RequestId::new(),
            duration_milliseconds: 8,
            time: datetime!(2021-02-20 00:21:54.867231 UTC),
            metrics,
            status: None,
            failed: false,
        }
    }

    #[test]
    fn encodes_exactly_like_algorithmia() {
        let p = payload();
        let expected = format!(
            r#"{{"risk_score":0.2,"approved":1,"duration_milliseconds":8,"algorithm_version":"1.0.6","request_id":"{}","time":"2021-02-20T00:21:54.867231","algorithm_name":"credit_card_approval","session_id":"{}","algorithm_owner":"asli"}}"#,
            p.request_id, p.session_id
        );
        assert_eq!(p.to_json(), expected);
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 9);
    }

    #[test]
    fn time_keeps_microseconds_and_leading_zeros() {
        assert_eq!(
            format_time(datetime!(2021-02-03 04:05:06.000007 UTC)),
            "2021-02-03T04:05:06.000007"
        );
        // Offsets are converted to UTC, never printed.
        assert_eq!(
            format_time(datetime!(2021-02-03 04:05:06.5 +02:00)),
            "2021-02-03T02:05:06.500000"
        );
    }

    #[test]
    fn status_keys_only_when_opted_in() {
        let mut p = payload();
        p.status = Some(ExecutionStatus::Success);
        assert!(
            p.to_json()
                .ends_with(r#""algorithm_owner":"asli","status":"success"}"#)
        );
        p.status = Some(ExecutionStatus::Error {
            error_type: "AlgorithmError".into(),
        });
        assert!(
            p.to_json()
                .ends_with(r#""status":"error","error_type":"AlgorithmError"}"#)
        );
    }

    #[test]
    fn strange_names_are_escaped_into_valid_json() {
        let mut p = payload();
        p.metrics
            .insert("quote\"back\\slash\nnew", 1.into())
            .unwrap();
        p.algorithm.owner = "o\u{1}".into();
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["quote\"back\\slash\nnew"], 1);
        assert_eq!(v["algorithm_owner"], "o\u{1}");
    }
}
