//! What a payload becomes on its way to Datadog: a spool record (the payload's JSON, as the
//! dispatcher encoded it), and from records, v2 series request bodies: one gauge per metric
//! (`duration_milliseconds` included), stamped with the payload's `time`, tagged with the
//! algorithm and the configured tags, compressed with zstd (`Content-Encoding: zstd1`) and cut
//! to Datadog's limits (512,000 bytes compressed, 5,242,880 decompressed).
//!
//! Metric names follow Datadog's rules: a character other than an ASCII letter, digit, `_` or
//! `.` becomes `_` (as Datadog maps it); a name that does not start with a letter or is longer
//! than 200 characters is refused (not sent) and counted, and the payload's other metrics go.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;

use insights_payload::flat::FlatValue;
use insights_payload::keys;

use super::DatadogSettings;
use super::config::{MAX_METRIC_NAME, is_name_char};
use crate::EncodedPayload;
use crate::spool::Record;

/// The spool's (key, value) for each payload: no key, the JSON shared, not copied.
pub(super) fn spool_rows(batch: &[EncodedPayload]) -> Vec<(Arc<str>, Arc<str>)> {
    let empty: Arc<str> = "".into();
    batch
        .iter()
        .map(|p| (empty.clone(), p.json.clone()))
        .collect()
}

/// The metric name Datadog would make of `prefix` + `key`, or why it refuses it.
pub(crate) fn metric_name(prefix: &str, key: &str) -> Result<String, NameRefused> {
    let mut name = String::with_capacity(prefix.len() + key.len());
    name.push_str(prefix);
    name.extend(key.chars().map(|c| if is_name_char(c) { c } else { '_' }));
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(NameRefused::NoLetterFirst);
    }
    if name.len() > MAX_METRIC_NAME {
        return Err(NameRefused::TooLong);
    }
    Ok(name)
}

/// Why a metric name cannot go to Datadog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRefused {
    TooLong,
    NoLetterFirst,
}

impl NameRefused {
    pub(crate) fn label(self) -> &'static str {
        match self {
            NameRefused::TooLong => "name_too_long",
            NameRefused::NoLetterFirst => "name_not_starting_with_a_letter",
        }
    }
}

/// One payload, read: its record's sequence number, its time, its tags (a JSON array) and its
/// points (each metric's name, as a JSON string, and value).
pub(super) struct Encoded {
    pub seq: u64,
    pub time_s: i64,
    pub tags: Vec<u8>,
    pub points: Vec<(String, f64)>,
    /// The most bytes its series take in a body (as if no point shared a series with another
    /// payload's): what the body limits are checked against before compression.
    pub len: usize,
    pub refused: Vec<NameRefused>,
}

/// Why a spooled payload cannot be read as one.
#[derive(Debug)]
pub(super) struct Unreadable(pub String);

/// Reads a spooled payload and writes its series.
pub(super) fn encode(record: &Record, settings: &DatadogSettings) -> Result<Encoded, Unreadable> {
    let fields: Vec<(std::borrow::Cow<'_, str>, FlatValue<'_>)> =
        serde_json::from_str::<FlatMap<'_>>(&record.value)
            .map_err(|e| Unreadable(format!("not a payload object: {e}")))?
            .0;
    let get_str = |k: &str| {
        fields.iter().find_map(|(key, v)| match v {
            FlatValue::Str(s) if key == k => Some(s.as_ref()),
            _ => None,
        })
    };
    let mut missing = Vec::new();
    let mut need = |k: &'static str| {
        let v = get_str(k);
        if v.is_none() {
            missing.push(k);
        }
        v.unwrap_or("")
    };
    let (name, owner, version, time) = (
        need(keys::ALGORITHM_NAME),
        need(keys::ALGORITHM_OWNER),
        need(keys::ALGORITHM_VERSION),
        need(keys::TIME),
    );
    if !missing.is_empty() {
        return Err(Unreadable(format!("no {}", missing.join(", "))));
    }
    let (time_s, _) = insights_payload::parse_time(time)
        .ok_or_else(|| Unreadable(format!("`time` cannot be read: {time:?}")))?;

    let mut tags = Vec::with_capacity(64);
    tags.push(b'[');
    push_json_str(&mut tags, &format!("algorithm_name:{name}"));
    tags.push(b',');
    push_json_str(&mut tags, &format!("algorithm_owner:{owner}"));
    tags.push(b',');
    push_json_str(&mut tags, &format!("algorithm_version:{version}"));
    if settings.legacy_id_tags {
        for k in keys::IDENTIFIERS {
            if let Some(v) = get_str(k) {
                tags.push(b',');
                push_json_str(&mut tags, &format!("{k}:{v}"));
            }
        }
    }
    for t in &settings.tags {
        tags.push(b',');
        push_json_str(&mut tags, t);
    }
    tags.push(b']');

    let mut points = Vec::with_capacity(fields.len());
    let mut refused = Vec::new();
    let mut len = 0;
    for (key, value) in &fields {
        let FlatValue::Num(v) = value else { continue };
        if keys::OPERATIONAL.contains(&key.as_ref()) && key != keys::DURATION_MILLISECONDS {
            continue;
        }
        let metric = match metric_name(&settings.metric_prefix, key) {
            Ok(m) => m,
            Err(why) => {
                refused.push(why);
                continue;
            }
        };
        // `{"metric":"…","type":3,"points":[{"timestamp":…,"value":…}],"tags":[…]},`, with room
        // for the longest number.
        len += 64 + metric.len() + 2 + 20 + 24 + tags.len();
        points.push((metric, *v));
    }
    Ok(Encoded {
        seq: record.seq,
        time_s,
        tags,
        points,
        len,
        refused,
    })
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("a string writes");
}

const HEAD: &[u8] = b"{\"series\":[";
const TAIL: &[u8] = b"]}";

/// A request body: the records it carries and the compressed bytes.
pub(super) struct Body {
    pub seqs: Vec<u64>,
    pub compressed: Vec<u8>,
    pub uncompressed_len: usize,
}

/// One series of a body: its metric, its tags (a JSON array) and its points (time, value).
type Series<'a> = (&'a str, &'a [u8], Vec<(i64, f64)>);

/// The uncompressed JSON body of `parts`: the points of one metric with the same tags (one
/// algorithm version's, without identifier tags) go in one series, in the order they came.
pub(super) fn json_body(parts: &[&Encoded]) -> Vec<u8> {
    let mut index: HashMap<(&str, &[u8]), usize> = HashMap::new();
    let mut series: Vec<Series<'_>> = Vec::new();
    for p in parts {
        for (metric, value) in &p.points {
            let key = (metric.as_str(), p.tags.as_slice());
            match index.get(&key) {
                Some(&i) => series[i].2.push((p.time_s, *value)),
                None => {
                    index.insert(key, series.len());
                    series.push((metric, &p.tags, vec![(p.time_s, *value)]));
                }
            }
        }
    }
    let len = HEAD.len() + TAIL.len() + parts.iter().map(|p| p.len).sum::<usize>();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(HEAD);
    for (i, (metric, tags, points)) in series.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"metric\":");
        push_json_str(&mut out, metric);
        out.extend_from_slice(b",\"type\":3,\"points\":[");
        for (j, (t, v)) in points.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            let _ = write!(out, "{{\"timestamp\":{t},\"value\":");
            serde_json::to_writer(&mut out, v).expect("a finite f64 writes");
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"tags\":");
        out.extend_from_slice(tags);
        out.push(b'}');
    }
    out.extend_from_slice(TAIL);
    out
}

/// Cuts `parts` into request bodies within both limits: groups by uncompressed size first,
/// then halves any group whose compressed body is still too large. A single payload is always
/// within them (25 metrics, 25,000 bytes of report): if it was not, it goes alone and the
/// intake's 413 decides.
pub(super) fn bodies(
    parts: &[Encoded],
    max_compressed: usize,
    max_uncompressed: usize,
) -> Vec<Body> {
    let mut out = Vec::new();
    let mut group: Vec<&Encoded> = Vec::new();
    let mut size = HEAD.len() + TAIL.len();
    for p in parts {
        if !group.is_empty() && size + p.len > max_uncompressed {
            split_into(&std::mem::take(&mut group), max_compressed, &mut out);
            size = HEAD.len() + TAIL.len();
        }
        size += p.len;
        group.push(p);
    }
    if !group.is_empty() {
        split_into(&group, max_compressed, &mut out);
    }
    out
}

fn split_into(group: &[&Encoded], max_compressed: usize, out: &mut Vec<Body>) {
    let json = json_body(group);
    let compressed = compress(&json);
    if compressed.len() > max_compressed && group.len() > 1 {
        let (a, b) = group.split_at(group.len() / 2);
        split_into(a, max_compressed, out);
        split_into(b, max_compressed, out);
        return;
    }
    out.push(Body {
        seqs: group.iter().map(|p| p.seq).collect(),
        compressed,
        uncompressed_len: json.len(),
    });
}

/// zstd at level 1: JSON of repeated tags compresses well even there, and it is the fastest.
pub(super) fn compress(json: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(json, 1).expect("compressing into memory cannot fail")
}

/// A payload object's keys and values in their order, values read as the series store reads
/// them.
struct FlatMap<'a>(Vec<(std::borrow::Cow<'a, str>, FlatValue<'a>)>);

impl<'de> serde::Deserialize<'de> for FlatMap<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FlatMap<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a payload object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(m.size_hint().unwrap_or(16));
                while let Some(k) = m.next_key::<std::borrow::Cow<'de, str>>()? {
                    out.push((k, m.next_value::<FlatValue<'de>>()?));
                }
                Ok(FlatMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insights_kafka::Secret;
    use serde_json::{Value, json};

    fn settings(legacy: bool) -> DatadogSettings {
        DatadogSettings {
            site: "datadoghq.com".into(),
            api_key: Secret::new("k"),
            metric_prefix: "algorithmia.".into(),
            tags: vec!["env:prod".into()],
            legacy_id_tags: legacy,
            url: None,
        }
    }

    fn record(seq: u64, json: &str) -> Record {
        Record {
            seq,
            created_micros: 0,
            key: "".into(),
            value: json.into(),
        }
    }

    const PAYLOAD: &str = r#"{"risk score":0.25,"count":3,"duration_milliseconds":12,"algorithm_version":"1.0.0","request_id":"req-1","time":"2026-12-02T00:00:01.500000","algorithm_name":"credit","session_id":"ses-1","algorithm_owner":"demo","status":"success"}"#;

    #[test]
    fn one_gauge_per_metric_stamped_and_tagged() {
        let e = encode(&record(7, PAYLOAD), &settings(false)).unwrap();
        let body: Value = serde_json::from_slice(&json_body(&[&e])).unwrap();
        let tags = json!([
            "algorithm_name:credit",
            "algorithm_owner:demo",
            "algorithm_version:1.0.0",
            "env:prod"
        ]);
        let point = |metric: &str, value: Value| json!({"metric": metric, "type": 3, "points": [{"timestamp": 1796169601i64, "value": value}], "tags": tags});
        assert_eq!(
            body,
            json!({"series": [
                point("algorithmia.risk_score", json!(0.25)),
                point("algorithmia.count", json!(3.0)),
                point("algorithmia.duration_milliseconds", json!(12.0)),
            ]})
        );
        assert_eq!(e.time_s, 1796169601);
    }

    #[test]
    fn identifiers_are_tags_only_when_asked() {
        let e = encode(&record(1, PAYLOAD), &settings(true)).unwrap();
        let body: Value = serde_json::from_slice(&json_body(&[&e])).unwrap();
        let tags = &body["series"][0]["tags"];
        assert_eq!(tags[3], "session_id:ses-1");
        assert_eq!(tags[4], "request_id:req-1");
        assert_eq!(tags[5], "env:prod");
    }

    #[test]
    fn names_are_mapped_or_refused_as_datadog_does() {
        assert_eq!(
            metric_name("algorithmia.", "a-b c/é").unwrap(),
            "algorithmia.a_b_c__"
        );
        assert_eq!(metric_name("", "9x"), Err(NameRefused::NoLetterFirst));
        assert_eq!(
            metric_name("p.", &"x".repeat(199)),
            Err(NameRefused::TooLong)
        );
        assert_eq!(metric_name("p.", &"x".repeat(198)).unwrap().len(), 200);
        let long = format!(r#"{{"{}":1,"ok":2,{}"#, "y".repeat(300), &PAYLOAD[1..]);
        let e = encode(&record(1, &long), &settings(false)).unwrap();
        assert_eq!(e.refused, [NameRefused::TooLong]);
        let body: Value = serde_json::from_slice(&json_body(&[&e])).unwrap();
        assert_eq!(body["series"][0]["metric"], "algorithmia.ok");
    }

    #[test]
    fn a_payload_missing_a_key_is_unreadable_not_a_crash() {
        let err = encode(
            &record(1, r#"{"x":1,"time":"2026-12-02T00:00:01.500000"}"#),
            &settings(false),
        )
        .err()
        .unwrap();
        assert!(err.0.contains("algorithm_name"), "{err:?}");
        assert!(encode(&record(1, "[1]"), &settings(false)).is_err());
    }

    #[test]
    fn bodies_stay_within_both_limits_and_carry_every_record_once() {
        let parts: Vec<Encoded> = (0..2000)
            .map(|i| {
                let json = PAYLOAD
                    .replace("req-1", &format!("req-{i}"))
                    .replace("0.25", &format!("{}", i as f64 * 1.37));
                encode(&record(i, &json), &settings(true)).unwrap()
            })
            .collect();
        let bodies = bodies(&parts, 20_000, 100_000);
        assert!(bodies.len() > 2);
        let mut seqs: Vec<u64> = bodies.iter().flat_map(|b| b.seqs.clone()).collect();
        seqs.sort();
        assert_eq!(seqs, (0..2000).collect::<Vec<_>>());
        for b in &bodies {
            assert!(b.compressed.len() <= 20_000, "{}", b.compressed.len());
            assert!(b.uncompressed_len <= 100_000);
            let json = zstd::bulk::decompress(&b.compressed, 200_000).unwrap();
            let v: Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(v["series"].as_array().unwrap().len(), b.seqs.len() * 3);
        }
    }

    #[test]
    fn points_of_one_series_share_an_entry() {
        let later = PAYLOAD
            .replace("00:00:01.5", "00:00:07.5")
            .replace("0.25", "0.5");
        let other = PAYLOAD.replace("\"credit\"", "\"fraud\"");
        let parts: Vec<Encoded> = [PAYLOAD, later.as_str(), other.as_str()]
            .iter()
            .enumerate()
            .map(|(i, p)| encode(&record(i as u64, p), &settings(false)).unwrap())
            .collect();
        let body: Value =
            serde_json::from_slice(&json_body(&parts.iter().collect::<Vec<_>>())).unwrap();
        let series = body["series"].as_array().unwrap();
        // credit: 3 metrics with 2 points each; fraud: 3 with one.
        assert_eq!(series.len(), 6, "{body}");
        assert_eq!(series[0]["metric"], "algorithmia.risk_score");
        assert_eq!(
            series[0]["points"],
            json!([{"timestamp": 1796169601i64, "value": 0.25}, {"timestamp": 1796169607i64, "value": 0.5}])
        );
        assert_eq!(series[3]["tags"][0], "algorithm_name:fraud");
        assert_eq!(series[3]["points"].as_array().unwrap().len(), 1);
        let bound: usize = parts.iter().map(|p| p.len).sum();
        assert!(json_body(&parts.iter().collect::<Vec<_>>()).len() <= bound + 13);
    }
}
