//! One Insights payload → one InfluxDB line-protocol point, as the classic Telegraf template
//! intended: measurement `algorithmia`; tags `algorithm_name`, `algorithm_owner`,
//! `algorithm_version`; string fields `session_id`, `request_id`; every other number a float
//! field (so a metric that is sometimes `1` and sometimes `1.5` never conflicts); booleans
//! 1.0/0.0; other strings left out and counted; timestamp from `time`.
//!
//! Escaping is the `influxdb-line-protocol` builder's, byte for byte: a property test compares
//! this encoder's lines with the builder's, and parses them back with the crate's parser. What line protocol cannot carry at all (a
//! line break anywhere in a name or tag value, or a backslash at its end, which would escape
//! the separator after it) is refused here rather than written as a broken line. The property
//! test below found the trailing backslash.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

const TAGS: [&str; 3] = insights_payload::keys::ALGORITHM;
const STRING_FIELDS: [&str; 2] = insights_payload::keys::IDENTIFIERS;

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
        let Flat(entries) = match serde_json::from_slice::<Top<'_>>(payload) {
            Ok(Top::Object(flat)) => flat,
            Ok(Top::Other(kind)) => return Err(Rejection::NotAnObject(kind.to_string())),
            Err(e) => return Err(Rejection::NotAnObject(e.to_string())),
        };
        let string = |key: &'static str| {
            entries
                .iter()
                .rev() // JSON's last duplicate wins, as serde_json's own maps have it
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| match v {
                    Val::Str(s) => Some(s.as_ref()),
                    _ => None,
                })
                .ok_or(Rejection::MissingKey(key))
        };
        let tags = [string(TAGS[0])?, string(TAGS[1])?, string(TAGS[2])?];
        let ids = [string(STRING_FIELDS[0])?, string(STRING_FIELDS[1])?];
        let time = string(insights_payload::keys::TIME)?;
        let timestamp = parse_time(time).ok_or_else(|| Rejection::BadTime(time.to_string()))?;
        for (key, value) in TAGS.iter().zip(tags) {
            if !encodable(value) {
                return Err(Rejection::Unencodable {
                    key: (*key).to_string(),
                    reason: "a tag value must be non-empty, with no line break and no backslash at its end",
                });
            }
        }

        let mut encoded = Encoded::default();
        let start = out.len();
        let mut line = Line(out);
        line.escaped(&self.measurement, MEASUREMENT_SPECIAL);
        for (key, value) in TAGS.iter().zip(tags) {
            line.raw(b",");
            line.escaped(key, KEY_SPECIAL);
            line.raw(b"=");
            line.escaped(value, KEY_SPECIAL);
        }
        for (i, (key, value)) in STRING_FIELDS.iter().zip(ids).enumerate() {
            line.raw(if i == 0 { b" " } else { b"," });
            line.escaped(key, KEY_SPECIAL);
            line.raw(b"=\"");
            line.escaped(value, STRING_SPECIAL);
            line.raw(b"\"");
        }
        for (i, (key, value)) in entries.iter().enumerate() {
            let key: &str = key;
            if TAGS.contains(&key)
                || STRING_FIELDS.contains(&key)
                || key == insights_payload::keys::TIME
            {
                continue;
            }
            if entries[i + 1..].iter().any(|(k, _)| k == key) {
                continue; // a later duplicate of this key wins
            }
            let number = match value {
                Val::Num(n) => Some(*n),
                Val::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
                Val::Str(_) | Val::Other => None,
            };
            let Some(number) = number.filter(|n| n.is_finite()) else {
                encoded.skipped_values += 1;
                continue;
            };
            if !encodable(key) {
                encoded.skipped_keys += 1;
                continue;
            }
            line.raw(b",");
            line.escaped(key, KEY_SPECIAL);
            line.raw(b"=");
            line.float(number);
        }
        line.raw(b" ");
        line.raw(itoa::Buffer::new().format(timestamp).as_bytes());
        line.raw(b"\n");
        debug_assert!(std::str::from_utf8(&out[start..]).is_ok());
        Ok(encoded)
    }
}

/// A payload's `time` as nanoseconds since the epoch (line protocol's timestamp).
fn parse_time(s: &str) -> Option<i64> {
    let (seconds, nanos) = insights_payload::parse_time(s)?;
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
}

/// A payload's top level: an object, flattened without copying its strings.
enum Top<'a> {
    Object(Flat<'a>),
    Other(&'static str),
}

struct Flat<'a>(Vec<(Cow<'a, str>, Val<'a>)>);

use insights_payload::flat::FlatValue as Val;

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(12));
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    entries.push((key, map.next_value::<Val<'de>>()?));
                }
                Ok(Top::Object(Flat(entries)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Top::Other("an array"))
            }
            fn visit_str<E>(self, _: &str) -> Result<Top<'de>, E> {
                Ok(Top::Other("a string"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top::Other("a number"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top::Other("a boolean"))
            }
            fn visit_unit<E>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other("null"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether line protocol can carry `s` as a name or tag value.
pub(crate) fn encodable(s: &str) -> bool {
    !s.is_empty() && !s.contains(['\n', '\r']) && !s.ends_with('\\')
}

/// What line protocol escapes with a backslash (a backslash itself always): in the measurement,
/// in tag keys, tag values and field keys, and in string field values. As lookup tables: the
/// escaping loop runs over every byte of every name.
const MEASUREMENT_SPECIAL: &Escapes = &escapes(b", ");
const KEY_SPECIAL: &Escapes = &escapes(b",= ");
const STRING_SPECIAL: &Escapes = &escapes(b"\"");

type Escapes = [bool; 256];

const fn escapes(special: &[u8]) -> Escapes {
    let mut table = [false; 256];
    table[b'\\' as usize] = true;
    let mut i = 0;
    while i < special.len() {
        table[special[i] as usize] = true;
        i += 1;
    }
    table
}

/// Writes line protocol byte for byte as the `influxdb-line-protocol` crate's builder does (the
/// property test `the_encoder_writes_what_the_crates_builder_writes` holds it to that), without
/// the builder's per-character `core::fmt` calls, which were 70% of the conversion's time.
struct Line<'a>(&'a mut Vec<u8>);

impl Line<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }

    /// Copies `s`, a backslash before each special byte and each backslash. Special bytes are
    /// ASCII, which never occurs inside a multi-byte UTF-8 sequence, so bytes are safe here.
    fn escaped(&mut self, s: &str, special: &Escapes) {
        let bytes = s.as_bytes();
        let mut copied = 0;
        for (i, &c) in bytes.iter().enumerate() {
            if special[usize::from(c)] {
                self.0.extend_from_slice(&bytes[copied..i]);
                self.0.push(b'\\');
                copied = i;
            }
        }
        self.0.extend_from_slice(&bytes[copied..]);
    }

    /// As `f64`'s `Display` writes it (never an exponent): whole numbers (most reported
    /// metrics) as integers with `itoa`, without `core::fmt`; `Display` for the rest. `ryu` was
    /// tried for the rest and refused by the property test: its shortest digits are not always
    /// `Display`'s (`919813850089033.2` against `919813850089033.3`, both shortest round-trip
    /// texts of one f64), and the line must be the builder's byte for byte.
    fn float(&mut self, value: f64) {
        const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53: every whole number below is exact
        if value.fract() == 0.0
            && value.abs() < EXACT
            && !(value == 0.0 && value.is_sign_negative())
        {
            self.raw(itoa::Buffer::new().format(value as i64).as_bytes());
            return;
        }
        self.display(value);
    }

    fn display(&mut self, value: impl std::fmt::Display) {
        use std::io::Write;
        write!(self.0, "{value}").expect("writing to a Vec cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use influxdb_line_protocol::{FieldValue, LineProtocolBuilder, parse_lines};
    use proptest::prelude::*;
    use serde_json::Value;
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
    fn numbers_are_written_as_display_writes_them() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -5.0,
            0.5,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            -9_007_199_254_740_993.0,
            1e300,
            f64::MIN_POSITIVE,
            0.1,
            0.3,
            -0.2,
            1e-5,
            1.5e-5,
            9.99e-6,
            123456789.123,
            2.5e15 + 0.5,
            9.5e15 + 1.0,
            1.0 / 3.0,
            -1e-300,
            f64::MAX,
            f64::EPSILON,
            919_813_850_089_033.2,
            f64::from_bits(919_813_850_089_033.2_f64.to_bits() + 1),
        ] {
            let mut out = Vec::new();
            Line(&mut out).float(v);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{v}"), "{v:e}");
        }
    }

    #[test]
    fn timestamps_parse_by_hand_as_the_time_crate_would() {
        for t in [
            "2021-02-20T00:21:54.867231",
            "1970-01-01T00:00:00",
            "2000-02-29T23:59:59.5",
            "2024-12-31T12:00:00.000000001",
            "1969-12-31T23:59:59.999999",
        ] {
            let want = time::PrimitiveDateTime::parse(
                t,
                time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second][optional [.[subsecond]]]"
                ),
            )
            .unwrap()
            .assume_utc()
            .unix_timestamp_nanos() as i64;
            assert_eq!(parse_time(t), Some(want), "{t}");
        }
        for bad in [
            "2021-02-20 00:21:54",
            "2021-13-01T00:00:00",
            "2021-02-20T00:21:54.",
            "2021-02-20T00:21:54Z",
            "yesterday",
            "2021-02-20T00:21:54.1234567890",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
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

    /// The same point through the `influxdb-line-protocol` crate's builder: the reference the
    /// hand-written encoder must match byte for byte.
    fn reference(p: &Value) -> String {
        let o = p.as_object().unwrap();
        let s = |k: &str| o[k].as_str().unwrap();
        let mut b = LineProtocolBuilder::new()
            .measurement("algorithmia")
            .tag(TAGS[0], s(TAGS[0]))
            .tag(TAGS[1], s(TAGS[1]))
            .tag(TAGS[2], s(TAGS[2]))
            .field(STRING_FIELDS[0], s(STRING_FIELDS[0]))
            .field(STRING_FIELDS[1], s(STRING_FIELDS[1]));
        for (k, v) in o {
            if TAGS.contains(&k.as_str()) || STRING_FIELDS.contains(&k.as_str()) || k == "time" {
                continue;
            }
            if let Some(f) = v.as_f64().filter(|_| encodable(k)) {
                b = b.field(k, f);
            }
        }
        let line = b
            .timestamp(parse_time(s("time")).unwrap())
            .close_line()
            .build();
        String::from_utf8(line).unwrap()
    }

    proptest! {
        #[test]
        fn the_encoder_writes_what_the_crates_builder_writes(
            owner in name(),
            session in name(),
            metrics in proptest::collection::btree_map(name(), proptest::num::f64::ANY, 0..8),
        ) {
            let mut extra = serde_json::Map::new();
            extra.insert("algorithm_owner".into(), owner.clone().into());
            extra.insert("session_id".into(), session.into());
            for (k, v) in &metrics {
                if !TAGS.contains(&k.as_str()) && !STRING_FIELDS.contains(&k.as_str()) && k != "time" {
                    extra.insert(k.clone(), json!(v)); // NaN and infinities become null
                }
            }
            let p = payload(Value::Object(extra));
            prop_assume!(encodable(&owner));
            let (line, _) = encode(&p).unwrap();
            prop_assert_eq!(line, reference(&p));
        }

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
