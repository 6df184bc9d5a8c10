//! One Insights payload → one InfluxDB line-protocol point, as the classic Telegraf template
//! intended: measurement `algorithmia`; tags `algorithm_name`, `algorithm_owner`,
//! `algorithm_version`; string fields `session_id`, `request_id`; every other number a float
//! field (so a metric that is sometimes `1` and sometimes `1.5` never conflicts); booleans
//! 1.0/0.0; other strings left out and counted; timestamp from `time`.
//!
//! Escaping is the `influxdb-line-protocol` builder's. What line protocol cannot carry at all (a
//! line break anywhere in a name or tag value, or a backslash at its end, which would escape
//! the separator after it) is refused here rather than written as a broken line. The property
//! test below found the trailing backslash.

use influxdb_line_protocol::LineProtocolBuilder;
use serde_json::{Map, Value};
use time::PrimitiveDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const TAGS: [&str; 3] = ["algorithm_name", "algorithm_owner", "algorithm_version"];
const STRING_FIELDS: [&str; 2] = ["session_id", "request_id"];
const TIME_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]");

/// Why a message cannot become a point: it goes to the dead-letter sink with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("not a JSON object: {0}")]
    NotAnObject(String),
    #[error("the operational key `{0}` is missing or not a string")]
    MissingKey(&'static str),
    #[error("`{key}` cannot be written as line protocol: {reason}")]
    Unencodable { key: String, reason: &'static str },
    #[error("`time` is not a UTC timestamp like 2021-02-20T00:21:54.867231: {0:?}")]
    BadTime(String),
}

impl Rejection {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Rejection::NotAnObject(_) => "not_an_object",
            Rejection::MissingKey(_) => "missing_key",
            Rejection::Unencodable { .. } => "unencodable",
            Rejection::BadTime(_) => "bad_time",
        }
    }
}

/// What an encoded point left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Keys whose value was a string (other than the two string fields), null, array or object.
    pub skipped_values: usize,
    /// Metric names line protocol cannot carry (empty, or with a newline).
    pub skipped_keys: usize,
}

/// The conversion, with its measurement name.
#[derive(Debug, Clone)]
pub struct Mapping {
    measurement: String,
}

impl Default for Mapping {
    fn default() -> Self {
        Self::new("algorithmia")
    }
}

impl Mapping {
    pub fn new(measurement: &str) -> Self {
        Self {
            measurement: measurement.to_string(),
        }
    }

    /// Appends the point for `payload` (one line, newline-terminated) to `out`. On rejection
    /// nothing is appended.
    pub fn encode(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<Encoded, Rejection> {
        let object: Map<String, Value> = match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(o)) => o,
            Ok(other) => return Err(Rejection::NotAnObject(kind(&other).to_string())),
            Err(e) => return Err(Rejection::NotAnObject(e.to_string())),
        };
        let string = |key: &'static str| {
            object
                .get(key)
                .and_then(Value::as_str)
                .ok_or(Rejection::MissingKey(key))
        };
        let tags = [string(TAGS[0])?, string(TAGS[1])?, string(TAGS[2])?];
        let ids = [string(STRING_FIELDS[0])?, string(STRING_FIELDS[1])?];
        let time = string("time")?;
        let timestamp = PrimitiveDateTime::parse(time, TIME_FORMAT)
            .map_err(|_| Rejection::BadTime(time.to_string()))?
            .assume_utc()
            .unix_timestamp_nanos() as i64;
        for (key, value) in TAGS.iter().zip(tags) {
            if !encodable(value) {
                return Err(Rejection::Unencodable {
                    key: (*key).to_string(),
                    reason: "a tag value must be non-empty, with no line break and no backslash at its end",
                });
            }
        }

        let mut encoded = Encoded::default();
        let mut b = LineProtocolBuilder::new_with(std::mem::take(out))
            .measurement(&self.measurement)
            .tag(TAGS[0], tags[0])
            .tag(TAGS[1], tags[1])
            .tag(TAGS[2], tags[2])
            .field(STRING_FIELDS[0], ids[0])
            .field(STRING_FIELDS[1], ids[1]);
        for (key, value) in &object {
            if TAGS.contains(&key.as_str())
                || STRING_FIELDS.contains(&key.as_str())
                || key == "time"
            {
                continue;
            }
            let number = match value {
                Value::Number(n) => n.as_f64(),
                Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                _ => None,
            };
            let Some(number) = number.filter(|n| n.is_finite()) else {
                encoded.skipped_values += 1;
                continue;
            };
            if !encodable(key) {
                encoded.skipped_keys += 1;
                continue;
            }
            b = b.field(key, number);
        }
        *out = b.timestamp(timestamp).close_line().build();
        Ok(encoded)
    }
}

/// Whether line protocol can carry `s` as a name or tag value.
fn encodable(s: &str) -> bool {
    !s.is_empty() && !s.contains(['\n', '\r']) && !s.ends_with('\\')
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb_line_protocol::{FieldValue, parse_lines};
    use proptest::prelude::*;
    use serde_json::json;

    fn payload(extra: Value) -> Value {
        let mut p = json!({
            "risk_score": 0.2,
            "approved": 1,
            "duration_milliseconds": 8,
            "algorithm_version": "1.0.6",
            "request_id": "req-9f5345b4-a1cd-431c-a43a-bd2a06f4a6f4",
            "time": "2021-02-20T00:21:54.867231",
            "algorithm_name": "credit_card_approval",
            "session_id": "rses-f28bb94a-5556-4aeb-a6d2-89493626bf4f",
            "algorithm_owner": "asli"
        });
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    }

    fn encode(p: &Value) -> Result<(String, Encoded), Rejection> {
        let mut out = Vec::new();
        let e = Mapping::default().encode(p.to_string().as_bytes(), &mut out)?;
        Ok((String::from_utf8(out).unwrap(), e))
    }

    #[test]
    fn the_documented_payload_becomes_this_exact_line() {
        let (line, e) = encode(&payload(json!({}))).unwrap();
        assert_eq!(
            line,
            "algorithmia,algorithm_name=credit_card_approval,algorithm_owner=asli,algorithm_version=1.0.6 \
             session_id=\"rses-f28bb94a-5556-4aeb-a6d2-89493626bf4f\",request_id=\"req-9f5345b4-a1cd-431c-a43a-bd2a06f4a6f4\",\
             risk_score=0.2,approved=1,duration_milliseconds=8 1613780514867231000\n"
        );
        assert_eq!(e, Encoded::default());
        // Every number is a float field: `approved=1` without an `i` suffix.
        let parsed = parse_lines(&line).next().unwrap().unwrap();
        assert_eq!(parsed.field_value("approved"), Some(&FieldValue::F64(1.0)));
        assert_eq!(parsed.timestamp, Some(1_613_780_514_867_231_000));
    }

    #[test]
    fn regression_a_trailing_backslash_would_escape_the_separator() {
        let (line, e) = encode(&payload(json!({"ratio\\": 1.5}))).unwrap();
        assert_eq!(e.skipped_keys, 1);
        assert!(parse_lines(&line).next().unwrap().is_ok(), "{line}");
        let err = encode(&payload(json!({"algorithm_owner": "acme\\"}))).unwrap_err();
        assert_eq!(err.label(), "unencodable");
    }

    #[test]
    fn booleans_strings_and_nulls() {
        let (line, e) = encode(&payload(
            json!({"flag": true, "off": false, "label": "high", "gone": null, "list": [1]}),
        ))
        .unwrap();
        let parsed = parse_lines(&line).next().unwrap().unwrap();
        assert_eq!(parsed.field_value("flag"), Some(&FieldValue::F64(1.0)));
        assert_eq!(parsed.field_value("off"), Some(&FieldValue::F64(0.0)));
        assert_eq!(parsed.field_value("label"), None);
        assert_eq!(e.skipped_values, 3);
    }

    #[test]
    fn messages_that_cannot_be_points_are_rejected_with_a_reason() {
        let mut out = b"kept\n".to_vec();
        let m = Mapping::default();
        assert!(
            matches!(m.encode(b"[1,2]", &mut out), Err(Rejection::NotAnObject(k)) if k == "an array")
        );
        assert!(matches!(
            m.encode(b"not json", &mut out),
            Err(Rejection::NotAnObject(_))
        ));
        for key in [
            "algorithm_name",
            "algorithm_owner",
            "algorithm_version",
            "session_id",
            "request_id",
            "time",
        ] {
            let mut p = payload(json!({}));
            p.as_object_mut().unwrap().remove(key);
            let err = m.encode(p.to_string().as_bytes(), &mut out).unwrap_err();
            assert_eq!(
                err,
                Rejection::MissingKey(match key {
                    "algorithm_name" => "algorithm_name",
                    "algorithm_owner" => "algorithm_owner",
                    "algorithm_version" => "algorithm_version",
                    "session_id" => "session_id",
                    "request_id" => "request_id",
                    _ => "time",
                })
            );
        }
        let err = m
            .encode(
                payload(json!({"time": "yesterday"})).to_string().as_bytes(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.label(), "bad_time");
        let err = m
            .encode(
                payload(json!({"algorithm_owner": "a\nb"}))
                    .to_string()
                    .as_bytes(),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.label(), "unencodable");
        assert_eq!(out, b"kept\n", "a rejected message appends nothing");
    }

    fn name() -> impl Strategy<Value = String> {
        // Everything line protocol must escape, and some non-ASCII.
        proptest::string::string_regex("[a-z0-9 ,=\"\\\\_.é→-]{1,20}").unwrap()
    }

    proptest! {
        #[test]
        fn what_is_encoded_parses_back_to_the_same_values(
            owner in name(),
            algo in name(),
            metrics in proptest::collection::btree_map(name(), -1.0e12f64..1.0e12, 0..8),
        ) {
            let mut extra = serde_json::Map::new();
            extra.insert("algorithm_owner".into(), owner.clone().into());
            extra.insert("algorithm_name".into(), algo.clone().into());
            for (k, v) in &metrics {
                if !TAGS.contains(&k.as_str()) && !STRING_FIELDS.contains(&k.as_str()) && k != "time" {
                    extra.insert(k.clone(), json!(v));
                }
            }
            let p = payload(Value::Object(extra.clone()));
            if !encodable(&owner) || !encodable(&algo) {
                prop_assert_eq!(encode(&p).unwrap_err().label(), "unencodable");
                return Ok(());
            }
            let (line, _) = encode(&p).unwrap();
            let parsed = parse_lines(&line).next().unwrap().unwrap();
            let tag = |k: &str| parsed.series.tag_set.as_ref().unwrap().iter().find(|(t, _)| t.as_str() == k).map(|(_, v)| v.to_string());
            prop_assert_eq!(tag("algorithm_owner"), Some(owner));
            prop_assert_eq!(tag("algorithm_name"), Some(algo));
            for (k, v) in extra.iter().filter(|(k, _)| !k.starts_with("algorithm_")) {
                if !encodable(k) {
                    prop_assert_eq!(parsed.field_value(k), None);
                    continue;
                }
                let want = v.as_f64().unwrap();
                match parsed.field_value(k) {
                    Some(FieldValue::F64(got)) => prop_assert_eq!(*got, want, "{}", k),
                    other => prop_assert!(false, "{k}: {other:?} in {line}"),
                }
            }
        }
    }
}
