//! A payload's JSON text → its algorithm version, its `time`, and its numeric values, parsed once
//! and borrowing from the text (keys and strings are copied only when they contain escapes).
//!
//! The rules, which match the bridge's mapping into InfluxDB so that both views of one Kafka
//! topic agree: every number is a value (`duration_milliseconds` included); a boolean is 1 or 0
//! (as the payload layer itself turns reported booleans into numbers); strings, nulls, arrays
//! and objects are skipped and counted, as are empty keys and keys under the reserved prefix
//! `insights.`; a key given twice keeps its last value, as JSON parsers do. The seven
//! operational keys must be there: `algorithm_owner`, `algorithm_name`, `algorithm_version`
//! (non-empty strings), `session_id`, `request_id` (strings), `duration_milliseconds` (a number)
//! and `time` (`YYYY-MM-DDTHH:MM:SS[.ffffff]`, UTC, no zone).

use std::borrow::Cow;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::ingest::{Outcome, Refusal};
use crate::model::Micros;

/// One parsed payload; its values are `values[range]` of the batch.
#[derive(Debug)]
pub(crate) struct Parsed<'a> {
    pub owner: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub version: Cow<'a, str>,
    pub time: Micros,
    pub failed: bool,
    pub values: std::ops::Range<usize>,
}

pub(crate) use insights_payload::flat::FlatValue as Val;

/// Buffers reused across the payloads of one batch, so parsing allocates once per batch.
#[derive(Default)]
pub(crate) struct Scratch<'a> {
    entries: Vec<(Cow<'a, str>, Val<'a>)>,
    /// Every value of the batch's payloads, metric name and number.
    pub values: Vec<(Cow<'a, str>, f64)>,
    /// Values skipped because they were not numbers (or their key is not allowed).
    pub skipped: usize,
}

use insights_payload::keys::{
    ALGORITHM_NAME as NAME, ALGORITHM_OWNER as OWNER, ALGORITHM_VERSION as VERSION,
    DURATION_MILLISECONDS as DURATION, ERROR_TYPE, REQUEST_ID as REQUEST, SESSION_ID as SESSION,
    STATUS, TIME,
};

pub(crate) fn parse<'a>(
    json: &'a str,
    outcome: Outcome,
    scratch: &mut Scratch<'a>,
) -> Result<Parsed<'a>, Refusal> {
    scratch.entries.clear();
    let mut de = serde_json::Deserializer::from_str(json);
    match (Flat(&mut scratch.entries)).deserialize(&mut de) {
        Ok(Ok(())) => {}
        Ok(Err(kind)) => return Err(Refusal::NotAnObject(format!("it is {kind}"))),
        Err(e) => return Err(Refusal::NotAnObject(e.to_string())),
    }
    if let Err(e) = de.end() {
        return Err(Refusal::NotAnObject(e.to_string()));
    }

    let entries = &scratch.entries;
    let mut found: [Option<usize>; 7] = [None; 7];
    let mut status: Option<&str> = None;
    for (i, (key, value)) in entries.iter().enumerate() {
        let slot = match key.as_ref() {
            OWNER => 0,
            NAME => 1,
            VERSION => 2,
            SESSION => 3,
            REQUEST => 4,
            DURATION => 5,
            TIME => 6,
            STATUS => {
                status = match value {
                    Val::Str(s) => Some(s),
                    _ => None,
                };
                continue;
            }
            _ => continue,
        };
        found[slot] = Some(i); // the last duplicate wins
    }
    let string =
        |slot: usize, key: &'static str, nonempty: bool| -> Result<&Cow<'a, str>, Refusal> {
            match found[slot].map(|i| &entries[i].1) {
                Some(Val::Str(s)) if !nonempty || !s.is_empty() => Ok(s),
                _ => Err(Refusal::MissingKey(key)),
            }
        };
    let owner = string(0, OWNER, true)?.clone();
    let name = string(1, NAME, true)?.clone();
    let version = string(2, VERSION, true)?.clone();
    string(3, SESSION, false)?;
    string(4, REQUEST, false)?;
    let duration = match found[5].map(|i| &entries[i].1) {
        Some(Val::Num(n)) => *n,
        _ => return Err(Refusal::MissingKey(DURATION)),
    };
    let time_text = string(6, TIME, false)?;
    let time = parse_time(time_text).ok_or_else(|| Refusal::BadTime(shorten(time_text)))?;
    let failed = match outcome {
        Outcome::Succeeded => false,
        Outcome::Failed => true,
        Outcome::FromStatusKey => status == Some("error"),
    };

    let start = scratch.values.len();
    for (i, (key, value)) in entries.iter().enumerate() {
        let k: &str = key;
        if is_operational(k) {
            continue;
        }
        // A later duplicate of this key wins. Comparing lengths first keeps this cheap.
        if entries[i + 1..]
            .iter()
            .any(|(other, _)| other.len() == k.len() && other == key)
        {
            continue;
        }
        let number = match value {
            Val::Num(n) => *n,
            Val::Bool(b) => f64::from(u8::from(*b)),
            Val::Str(_) | Val::Other => {
                scratch.skipped += 1;
                continue;
            }
        };
        if k.is_empty() || k.starts_with(insights_payload::RESERVED_PREFIX) {
            scratch.skipped += 1;
            continue;
        }
        scratch.values.push((key.clone(), number));
    }
    scratch.values.push((Cow::Borrowed(DURATION), duration));
    Ok(Parsed {
        owner,
        name,
        version,
        time,
        failed,
        values: start..scratch.values.len(),
    })
}

/// Keys that are never values: the operational keys and the opt-in `status` / `error_type`.
fn is_operational(k: &str) -> bool {
    matches!(
        k,
        OWNER | NAME | VERSION | SESSION | REQUEST | DURATION | TIME | STATUS | ERROR_TYPE
    )
}

fn shorten(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A payload's `time` as microseconds since the epoch; digits past the sixth of the fraction
/// are dropped.
pub(crate) fn parse_time(s: &str) -> Option<Micros> {
    let (seconds, nanos) = insights_payload::parse_time(s)?;
    seconds
        .checked_mul(1_000_000)?
        .checked_add(i64::from(nanos / 1000))
}

/// Collects a JSON object's top-level entries into the scratch vector; anything else is
/// answered with what it was.
struct Flat<'s, 'de>(&'s mut Vec<(Cow<'de, str>, Val<'de>)>);

impl<'de> DeserializeSeed<'de> for Flat<'_, 'de> {
    type Value = Result<(), &'static str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flat<'_, 'de> {
    type Value = Result<(), &'static str>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key::<CowStr<'de>>()? {
            let value = map.next_value_seed(ValSeed)?;
            self.0.push((key.0, value));
        }
        Ok(Ok(()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Err("an array"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err("a string"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err("a number"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err("a boolean"))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Err("null"))
    }
}

/// A string that borrows from the input unless it holds escapes.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<CowStr<'de>, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

struct ValSeed;

impl<'de> DeserializeSeed<'de> for ValSeed {
    type Value = Val<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
        d.deserialize_any(insights_payload::flat::FlatVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SECOND;

    const P: &str = r#"{"risk_score":0.2,"approved":1,"duration_milliseconds":8,"algorithm_version":"1.0.6","request_id":"req-1","time":"2021-02-20T00:21:54.867231","algorithm_name":"credit_card_approval","session_id":"rses-1","algorithm_owner":"asli"}"#;

    #[test]
    fn reads_the_payload_format_borrowing() {
        let mut s = Scratch::default();
        let p = parse(P, Outcome::Succeeded, &mut s).unwrap();
        assert!(matches!(p.owner, Cow::Borrowed("asli")));
        assert_eq!(p.name, "credit_card_approval");
        assert_eq!(p.version, "1.0.6");
        assert_eq!(p.time, 1_613_780_514_867_231);
        assert!(!p.failed);
        let values: Vec<_> = s.values[p.values]
            .iter()
            .map(|(k, v)| (k.as_ref(), *v))
            .collect();
        assert_eq!(
            values,
            [
                ("risk_score", 0.2),
                ("approved", 1.0),
                ("duration_milliseconds", 8.0)
            ]
        );
    }

    #[test]
    fn status_decides_failure_only_when_asked_to() {
        let failed = P.replace("}", r#","status":"error","error_type":"AlgorithmError"}"#);
        let mut s = Scratch::default();
        assert!(
            parse(&failed, Outcome::FromStatusKey, &mut s)
                .unwrap()
                .failed
        );
        assert!(!parse(&failed, Outcome::Succeeded, &mut s).unwrap().failed);
        assert!(!parse(P, Outcome::FromStatusKey, &mut s).unwrap().failed);
        assert!(parse(P, Outcome::Failed, &mut s).unwrap().failed);
        assert_eq!(s.skipped, 0, "status and error_type are not skipped values");
    }

    #[test]
    fn skips_what_is_not_a_number_and_keeps_the_last_duplicate() {
        let json = P.replace(
            r#"{"risk_score":0.2,"#,
            r#"{"risk_score":0.2,"label":"x","n":null,"a":[1],"o":{"x":1},"ok":true,"":3,"insights.executions":5,"esc\u0061ped":2,"risk_score":0.7,"#,
        );
        let mut s = Scratch::default();
        let p = parse(&json, Outcome::Succeeded, &mut s).unwrap();
        let values: Vec<_> = s.values[p.values]
            .iter()
            .map(|(k, v)| (k.as_ref(), *v))
            .collect();
        assert_eq!(
            values,
            [
                ("ok", 1.0),
                ("escaped", 2.0),
                ("risk_score", 0.7),
                ("approved", 1.0),
                ("duration_milliseconds", 8.0)
            ]
        );
        assert_eq!(s.skipped, 6);
    }

    #[test]
    fn refuses_with_the_key_at_fault() {
        let mut s = Scratch::default();
        let refuse =
            |json: &str| parse(json, Outcome::Succeeded, &mut Scratch::default()).unwrap_err();
        assert_eq!(
            refuse(&P.replace(r#""algorithm_owner":"asli""#, r#""algorithm_owner":3"#)),
            Refusal::MissingKey("algorithm_owner")
        );
        assert_eq!(
            refuse(&P.replace(r#""algorithm_name":"credit_card_approval","#, "")),
            Refusal::MissingKey("algorithm_name")
        );
        assert_eq!(
            refuse(&P.replace(
                r#""algorithm_version":"1.0.6""#,
                r#""algorithm_version":"""#
            )),
            Refusal::MissingKey("algorithm_version")
        );
        assert_eq!(
            refuse(&P.replace(r#""session_id":"rses-1","#, "")),
            Refusal::MissingKey("session_id")
        );
        assert_eq!(
            refuse(&P.replace(
                r#""duration_milliseconds":8"#,
                r#""duration_milliseconds":"8""#
            )),
            Refusal::MissingKey("duration_milliseconds")
        );
        assert_eq!(
            refuse(&P.replace("2021-02-20T00:21:54.867231", "2021-02-30T00:21:54")),
            Refusal::BadTime("2021-02-30T00:21:54".into())
        );
        assert!(matches!(refuse("[1,2]"), Refusal::NotAnObject(m) if m == "it is an array"));
        assert!(matches!(refuse("{\"a\":"), Refusal::NotAnObject(_)));
        assert!(matches!(refuse(&format!("{P} x")), Refusal::NotAnObject(_)));
        assert!(matches!(refuse(r#"{"x":1e400}"#), Refusal::NotAnObject(_)));
        assert!(parse(P, Outcome::Succeeded, &mut s).is_ok());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00"), Some(0));
        assert_eq!(parse_time("1970-01-01T00:00:01.5"), Some(1_500_000));
        assert_eq!(parse_time("1970-01-01T00:00:00.000001999"), Some(1));
        assert_eq!(parse_time("1969-12-31T23:59:59.999999"), Some(-1));
        assert_eq!(
            parse_time("2024-02-29T12:00:00"),
            Some(1_709_208_000 * SECOND)
        );
        for bad in [
            "2023-02-29T12:00:00",
            "2021-02-20T24:00:00",
            "2021-02-20T00:00:60",
            "2021-02-20 00:00:00",
            "2021-02-20T00:00:00Z",
            "2021-02-20T00:00:00+01:00",
            "2021-02-20T00:00:00.",
            "2021-13-01T00:00:00",
            "2021-02-20",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
