//! What a payload becomes on its way to Datadog: a spool record (the payload's JSON, as the
//! dispatcher encoded it), and from records, v2 series request bodies: one gauge per metric
//! (`duration_milliseconds` included), stamped with the payload's `time`, tagged with the
//! algorithm and the configured tags, compressed with zstd (`Content-Encoding: zstd1`) and cut
//! to Datadog's limits (512,000 bytes compressed, 5,242,880 decompressed).
//!
//! A record is read in one pass over its JSON, the same whether it was appended a moment ago
//! or read back from disk after a restart (its bytes in the spool are the same JSON). What many payloads share is
//! made once and kept in [`Shared`] while the settings last: each key's metric name, and each
//! algorithm version's tag array; a series is found by their ids, not by hashing its strings.
//!
//! Metric names follow Datadog's rules: a character other than an ASCII letter, digit, `_` or
//! `.` becomes `_` (as Datadog maps it); a name that does not start with a letter or is longer
//! than 200 characters is refused (not sent) and counted, and the payload's other metrics go.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ops::Range;
use std::sync::Arc;

use insights_payload::flat::FlatValue;
use insights_payload::keys;

use super::DatadogSettings;
use super::config::{MAX_METRIC_NAME, is_name_char};
use crate::EncodedPayload;
use crate::spool::{FastHash, Record};

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

/// What the payloads of many request rounds share under one set of settings: each payload
/// key's metric name as Datadog maps it (or why it refuses it), and the tag array of each
/// algorithm version, each made once instead of once per payload. Ids index into it, so it is
/// cleared only between rounds ([`Shared::trim`]) and when the settings change.
#[derive(Default)]
pub(super) struct Shared {
    /// A payload key → its metric's id in `names`, or why Datadog refuses it.
    by_key: foldhash::HashMap<Box<str>, Result<u32, NameRefused>>,
    /// Each metric name as a JSON string (quoted), and its length unquoted.
    names: Vec<(Box<[u8]>, usize)>,
    /// An algorithm version (its three strings, each after its length) → its id in `tags`.
    by_version: foldhash::HashMap<Box<[u8]>, u32>,
    /// Each algorithm version's tag array (JSON), the configured tags included.
    tags: Vec<Box<[u8]>>,
    /// Where a version's key is put together before it is looked up.
    scratch: Vec<u8>,
    /// The bytes of the keys, names and tag arrays kept.
    bytes: usize,
}

/// Keys and algorithm versions [`Shared`] keeps at most, and their bytes (a key may be as long
/// as a report allows).
const MAX_SHARED: usize = 4096;
const MAX_SHARED_BYTES: usize = 1 << 20;

impl Shared {
    /// Forgets everything (new settings: another prefix, other tags).
    pub(super) fn clear(&mut self) {
        *self = Shared::default();
    }

    /// Forgets everything once past its bound. Only between request rounds: an [`Encoded`]
    /// holds ids into it.
    pub(super) fn trim(&mut self) {
        if self.by_key.len() + self.tags.len() > MAX_SHARED || self.bytes > MAX_SHARED_BYTES {
            self.clear();
        }
    }

    fn name(&mut self, prefix: &str, key: &str) -> Result<u32, NameRefused> {
        if let Some(&known) = self.by_key.get(key) {
            return known;
        }
        let id = metric_name(prefix, key).map(|name| {
            let mut json = Vec::with_capacity(name.len() + 2);
            push_json_str(&mut json, &name);
            self.bytes += json.len();
            self.names.push((json.into(), name.len()));
            (self.names.len() - 1) as u32
        });
        self.bytes += key.len();
        self.by_key.insert(key.into(), id);
        id
    }

    fn version_tags(
        &mut self,
        name: &str,
        owner: &str,
        version: &str,
        settings: &DatadogSettings,
    ) -> u32 {
        self.scratch.clear();
        for s in [name, owner, version] {
            self.scratch
                .extend_from_slice(&(s.len() as u64).to_le_bytes());
            self.scratch.extend_from_slice(s.as_bytes());
        }
        if let Some(&id) = self.by_version.get(self.scratch.as_slice()) {
            return id;
        }
        let tags = tag_array(name, owner, version, [None, None], settings);
        self.bytes += tags.len() + self.scratch.len();
        self.tags.push(tags.into());
        let id = (self.tags.len() - 1) as u32;
        self.by_version.insert(self.scratch.as_slice().into(), id);
        id
    }
}

/// A payload's tags: the array its algorithm version shares with every other payload of it, or
/// (with identifier tags, which differ per payload) its own.
enum Tags {
    Shared(u32),
    Own(Box<[u8]>),
}

/// The tag array of a payload: the algorithm's three tags, the identifiers when given, then
/// the configured tags.
fn tag_array(
    name: &str,
    owner: &str,
    version: &str,
    identifiers: [Option<&str>; 2],
    settings: &DatadogSettings,
) -> Vec<u8> {
    let mut tags = Vec::with_capacity(64);
    tags.push(b'[');
    push_json_str(&mut tags, &format!("algorithm_name:{name}"));
    tags.push(b',');
    push_json_str(&mut tags, &format!("algorithm_owner:{owner}"));
    tags.push(b',');
    push_json_str(&mut tags, &format!("algorithm_version:{version}"));
    for (k, v) in keys::IDENTIFIERS.iter().zip(identifiers) {
        if let Some(v) = v {
            tags.push(b',');
            push_json_str(&mut tags, &format!("{k}:{v}"));
        }
    }
    for t in &settings.tags {
        tags.push(b',');
        push_json_str(&mut tags, t);
    }
    tags.push(b']');
    tags
}

/// One payload, read: its record's sequence number, its time, its tags and its points (each
/// metric's id in [`Shared`], and its value).
pub(super) struct Encoded {
    pub seq: u64,
    pub time_s: i64,
    tags: Tags,
    points: Vec<(u32, f64)>,
    /// The most bytes its series take in a body (as if no point shared a series with another
    /// payload's): what the body limits are checked against before compression.
    pub len: usize,
    pub refused: Vec<NameRefused>,
}

impl Encoded {
    /// No metric of it can go to Datadog.
    pub(super) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// Why a spooled payload cannot be read as one.
#[derive(Debug)]
pub(super) struct Unreadable(pub String);

/// The payload's strings [`encode`] keeps, in the order of [`Fields::strs`].
const WANTED: [&str; 6] = [
    keys::ALGORITHM_NAME,
    keys::ALGORITHM_OWNER,
    keys::ALGORITHM_VERSION,
    keys::TIME,
    keys::SESSION_ID,
    keys::REQUEST_ID,
];

/// Reads a spooled payload (its JSON: one read back from disk after a restart, or one whose
/// values are no longer at hand) and writes its series, in one pass over the object: numbers
/// become points as they come, and only the strings the series need are kept, borrowed from
/// the record.
pub(super) fn encode(
    record: &Record,
    settings: &DatadogSettings,
    shared: &mut Shared,
) -> Result<Encoded, Unreadable> {
    let mut read = Fields {
        shared,
        prefix: &settings.metric_prefix,
        strs: Default::default(),
        points: Points::default(),
    };
    let mut de = serde_json::Deserializer::from_str(&record.value);
    serde::de::DeserializeSeed::deserialize(&mut read, &mut de)
        .and_then(|()| de.end())
        .map_err(|e| Unreadable(format!("not a payload object: {e}")))?;
    let Fields {
        shared,
        strs,
        points,
        ..
    } = read;
    let [name, owner, version, time, session_id, request_id] = strs;
    let missing: Vec<&str> = [&name, &owner, &version, &time]
        .iter()
        .zip(WANTED)
        .filter(|(v, _)| v.is_none())
        .map(|(_, k)| k)
        .collect();
    if !missing.is_empty() {
        return Err(Unreadable(format!("no {}", missing.join(", "))));
    }
    let (name, owner, version, time) = (
        name.unwrap_or_default(),
        owner.unwrap_or_default(),
        version.unwrap_or_default(),
        time.unwrap_or_default(),
    );
    let (time_s, _) = insights_payload::parse_time(&time)
        .ok_or_else(|| Unreadable(format!("`time` cannot be read: {time:?}")))?;
    let payload = Strings {
        name: &name,
        owner: &owner,
        version: &version,
        identifiers: [session_id.as_deref(), request_id.as_deref()],
    };
    Ok(finish(
        record.seq, time_s, payload, points, settings, shared,
    ))
}

/// Writes the series of a payload whose values are at hand (one the dispatcher handed over a
/// moment ago), without reading its JSON: the same series [`encode`] reads from that JSON,
/// which `Payload::to_json` wrote from these values (the reported metrics in their order, then
/// `duration_milliseconds`; no other key of it is a number).
pub(super) fn encode_known(
    seq: u64,
    p: &EncodedPayload,
    settings: &DatadogSettings,
    shared: &mut Shared,
) -> Encoded {
    let prefix = &settings.metric_prefix;
    let mut points = Points::default();
    for (key, value) in p.metrics.iter() {
        points.push(shared, prefix, key, value.as_f64());
    }
    points.push(
        shared,
        prefix,
        keys::DURATION_MILLISECONDS,
        p.duration_milliseconds as f64,
    );
    let payload = Strings {
        name: &p.algorithm.name,
        owner: &p.algorithm.owner,
        version: &p.algorithm.version,
        identifiers: [Some(p.session_id.as_str()), Some(p.request_id.as_str())],
    };
    let time_s = p.time_us.div_euclid(1_000_000);
    finish(seq, time_s, payload, points, settings, shared)
}

/// The strings of a payload its series are tagged with.
struct Strings<'a> {
    name: &'a str,
    owner: &'a str,
    version: &'a str,
    /// `session_id`, `request_id`: tags only with `legacy_id_tags`.
    identifiers: [Option<&'a str>; 2],
}

/// A payload's points as they are read: each metric's id in [`Shared`] and its value.
#[derive(Default)]
struct Points {
    points: Vec<(u32, f64)>,
    /// The unquoted lengths of the points' metric names, summed.
    names_len: usize,
    refused: Vec<NameRefused>,
}

impl Points {
    fn push(&mut self, shared: &mut Shared, prefix: &str, key: &str, value: f64) {
        match shared.name(prefix, key) {
            Ok(id) => {
                self.names_len += shared.names[id as usize].1;
                self.points.push((id, value));
            }
            Err(why) => self.refused.push(why),
        }
    }
}

fn finish(
    seq: u64,
    time_s: i64,
    payload: Strings<'_>,
    points: Points,
    settings: &DatadogSettings,
    shared: &mut Shared,
) -> Encoded {
    let Strings {
        name,
        owner,
        version,
        identifiers,
    } = payload;
    let (tags, tags_len) = if settings.legacy_id_tags {
        let own = tag_array(name, owner, version, identifiers, settings);
        let len = own.len();
        (Tags::Own(own.into()), len)
    } else {
        let id = shared.version_tags(name, owner, version, settings);
        (Tags::Shared(id), shared.tags[id as usize].len())
    };
    let Points {
        points,
        names_len,
        refused,
    } = points;
    // `{"metric":"…","type":3,"points":[{"timestamp":…,"value":…}],"tags":[…]},`, with room
    // for the longest number, per point.
    let len = names_len + points.len() * (64 + 2 + 20 + 24 + tags_len);
    Encoded {
        seq,
        time_s,
        tags,
        points,
        len,
        refused,
    }
}

/// The visitor of [`encode`]'s one pass: a payload object's keys and values in their order,
/// values read as the series store reads them ([`FlatValue`]).
struct Fields<'a, 's> {
    shared: &'s mut Shared,
    prefix: &'s str,
    /// The first string value of each of [`WANTED`].
    strs: [Option<Cow<'a, str>>; 6],
    points: Points,
}

impl<'de> serde::de::DeserializeSeed<'de> for &mut Fields<'de, '_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for &mut Fields<'de, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a payload object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        while let Some(key) = m.next_key::<Cow<'de, str>>()? {
            match m.next_value::<FlatValue<'de>>()? {
                FlatValue::Num(v) => {
                    if keys::OPERATIONAL.contains(&key.as_ref())
                        && key != keys::DURATION_MILLISECONDS
                    {
                        continue;
                    }
                    self.points.push(self.shared, self.prefix, &key, v);
                }
                FlatValue::Str(s) => {
                    if let Some(i) = WANTED.iter().position(|k| *k == key)
                        && self.strs[i].is_none()
                    {
                        self.strs[i] = Some(s);
                    }
                }
                FlatValue::Bool(_) | FlatValue::Other => {}
            }
        }
        Ok(())
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(out, s).expect("a string writes");
}

/// An integer as JSON writes it, without `core::fmt`.
fn push_i64(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut u = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (u % 10) as u8;
        u /= 10;
        if u == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

const HEAD: &[u8] = b"{\"series\":[";
const TAIL: &[u8] = b"]}";

/// A request body: the parts it carries (a range of the slice given to [`bodies`]) and the
/// compressed bytes.
pub(super) struct Body {
    pub parts: Range<usize>,
    pub compressed: Vec<u8>,
    pub uncompressed_len: usize,
}

/// What makes a series one: its metric and its tags.
#[derive(PartialEq, Eq, Hash)]
enum SeriesKey<'a> {
    Shared(u32, u32),
    Own(u32, &'a [u8]),
}

/// One series of a body: its metric, its tags (a JSON array) and its points (time, value).
type Series<'a> = (u32, &'a [u8], Vec<(i64, f64)>);

/// The uncompressed JSON body of `parts`: the points of one metric with the same tags (one
/// algorithm version's, without identifier tags) go in one series, in the order they came.
pub(super) fn json_body(parts: &[Encoded], shared: &Shared) -> Vec<u8> {
    let mut index: HashMap<SeriesKey<'_>, usize, FastHash> = HashMap::default();
    let mut series: Vec<Series<'_>> = Vec::new();
    for p in parts {
        let tags: &[u8] = match &p.tags {
            Tags::Shared(id) => &shared.tags[*id as usize],
            Tags::Own(own) => own,
        };
        for &(metric, value) in &p.points {
            let key = match &p.tags {
                Tags::Shared(id) => SeriesKey::Shared(metric, *id),
                Tags::Own(own) => SeriesKey::Own(metric, own),
            };
            match index.entry(key) {
                Entry::Occupied(i) => series[*i.get()].2.push((p.time_s, value)),
                Entry::Vacant(v) => {
                    v.insert(series.len());
                    series.push((metric, tags, vec![(p.time_s, value)]));
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
        out.extend_from_slice(&shared.names[*metric as usize].0);
        out.extend_from_slice(b",\"type\":3,\"points\":[");
        for (j, (t, v)) in points.iter().enumerate() {
            if j > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"timestamp\":");
            push_i64(&mut out, *t);
            out.extend_from_slice(b",\"value\":");
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
/// intake's 413 decides. The bodies' ranges follow one another and cover `parts`, in order.
pub(super) fn bodies(
    parts: &[Encoded],
    shared: &Shared,
    max_compressed: usize,
    max_uncompressed: usize,
) -> Vec<Body> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = HEAD.len() + TAIL.len();
    for (i, p) in parts.iter().enumerate() {
        if i > start && size + p.len > max_uncompressed {
            split_into(parts, start..i, shared, max_compressed, &mut out);
            start = i;
            size = HEAD.len() + TAIL.len();
        }
        size += p.len;
    }
    if start < parts.len() {
        split_into(parts, start..parts.len(), shared, max_compressed, &mut out);
    }
    out
}

fn split_into(
    parts: &[Encoded],
    group: Range<usize>,
    shared: &Shared,
    max_compressed: usize,
    out: &mut Vec<Body>,
) {
    let json = json_body(&parts[group.clone()], shared);
    let compressed = compress(&json);
    if compressed.len() > max_compressed && group.len() > 1 {
        let mid = group.start + group.len() / 2;
        split_into(parts, group.start..mid, shared, max_compressed, out);
        split_into(parts, mid..group.end, shared, max_compressed, out);
        return;
    }
    out.push(Body {
        parts: group,
        compressed,
        uncompressed_len: json.len(),
    });
}

/// zstd at level 1: JSON of repeated tags compresses well even there, and it is the fastest.
pub(super) fn compress(json: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(json, 1).expect("compressing into memory cannot fail")
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

    /// Reads one payload with caches of its own.
    fn read(record: &Record, settings: &DatadogSettings) -> (Encoded, Shared) {
        let mut shared = Shared::default();
        let e = encode(record, settings, &mut shared).unwrap();
        (e, shared)
    }

    fn body_of(parts: &[Encoded], shared: &Shared) -> Value {
        serde_json::from_slice(&json_body(parts, shared)).unwrap()
    }

    const PAYLOAD: &str = r#"{"risk score":0.25,"count":3,"duration_milliseconds":12,"algorithm_version":"1.0.0","request_id":"req-1","time":"2026-12-02T00:00:01.500000","algorithm_name":"credit","session_id":"ses-1","algorithm_owner":"demo","status":"success"}"#;

    #[test]
    fn one_gauge_per_metric_stamped_and_tagged() {
        let (e, shared) = read(&record(7, PAYLOAD), &settings(false));
        let body = body_of(std::slice::from_ref(&e), &shared);
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
        let (e, shared) = read(&record(1, PAYLOAD), &settings(true));
        let body = body_of(&[e], &shared);
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
        let (e, shared) = read(&record(1, &long), &settings(false));
        assert_eq!(e.refused, [NameRefused::TooLong]);
        let body = body_of(&[e], &shared);
        assert_eq!(body["series"][0]["metric"], "algorithmia.ok");
    }

    #[test]
    fn a_payload_missing_a_key_is_unreadable_not_a_crash() {
        let mut shared = Shared::default();
        let err = encode(
            &record(1, r#"{"x":1,"time":"2026-12-02T00:00:01.500000"}"#),
            &settings(false),
            &mut shared,
        )
        .err()
        .unwrap();
        assert!(err.0.contains("algorithm_name"), "{err:?}");
        for bad in ["[1]", "{\"x\":1} 2", "{\"x\":", ""] {
            assert!(
                encode(&record(1, bad), &settings(false), &mut shared).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies_stay_within_both_limits_and_carry_every_record_once() {
        let mut shared = Shared::default();
        let parts: Vec<Encoded> = (0..2000)
            .map(|i| {
                let json = PAYLOAD
                    .replace("req-1", &format!("req-{i}"))
                    .replace("0.25", &format!("{}", i as f64 * 1.37));
                encode(&record(i, &json), &settings(true), &mut shared).unwrap()
            })
            .collect();
        let bodies = bodies(&parts, &shared, 20_000, 100_000);
        assert!(bodies.len() > 2);
        let seqs: Vec<u64> = bodies
            .iter()
            .flat_map(|b| parts[b.parts.clone()].iter().map(|p| p.seq))
            .collect();
        assert_eq!(seqs, (0..2000).collect::<Vec<_>>(), "in order, each once");
        for b in &bodies {
            assert!(b.compressed.len() <= 20_000, "{}", b.compressed.len());
            assert!(b.uncompressed_len <= 100_000);
            let json = zstd::bulk::decompress(&b.compressed, 200_000).unwrap();
            let v: Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(v["series"].as_array().unwrap().len(), b.parts.len() * 3);
        }
    }

    #[test]
    fn points_of_one_series_share_an_entry() {
        let later = PAYLOAD
            .replace("00:00:01.5", "00:00:07.5")
            .replace("0.25", "0.5");
        let other = PAYLOAD.replace("\"credit\"", "\"fraud\"");
        let mut shared = Shared::default();
        let parts: Vec<Encoded> = [PAYLOAD, later.as_str(), other.as_str()]
            .iter()
            .enumerate()
            .map(|(i, p)| encode(&record(i as u64, p), &settings(false), &mut shared).unwrap())
            .collect();
        let body = body_of(&parts, &shared);
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
        assert!(json_body(&parts, &shared).len() <= bound + 13);
    }

    /// What a body of `payloads` must say, worked out plainly from each payload's JSON as a
    /// `serde_json::Value` (in document order): no caches, no single pass, no ids.
    fn reference(payloads: &[String], s: &DatadogSettings) -> Value {
        type Series = (String, Vec<String>, Vec<Value>);
        let mut series: Vec<Series> = Vec::new();
        for p in payloads {
            let doc: serde_json::Map<String, Value> = serde_json::from_str(p).unwrap();
            let get = |k: &str| doc.get(k).and_then(Value::as_str);
            let (t, _) = insights_payload::parse_time(get(keys::TIME).unwrap()).unwrap();
            let mut tags: Vec<String> = [
                keys::ALGORITHM_NAME,
                keys::ALGORITHM_OWNER,
                keys::ALGORITHM_VERSION,
            ]
            .iter()
            .map(|k| format!("{k}:{}", get(k).unwrap()))
            .collect();
            if s.legacy_id_tags {
                for k in keys::IDENTIFIERS {
                    if let Some(v) = get(k) {
                        tags.push(format!("{k}:{v}"));
                    }
                }
            }
            tags.extend(s.tags.iter().cloned());
            for (k, v) in &doc {
                let Some(v) = v.as_f64() else { continue };
                if keys::OPERATIONAL.contains(&k.as_str()) && k != keys::DURATION_MILLISECONDS {
                    continue;
                }
                let Ok(metric) = metric_name(&s.metric_prefix, k) else {
                    continue;
                };
                let point = json!({"timestamp": t, "value": v});
                match series.iter_mut().find(|x| x.0 == metric && x.1 == tags) {
                    Some(x) => x.2.push(point),
                    None => series.push((metric, tags.clone(), vec![point])),
                }
            }
        }
        let series: Vec<Value> = series
            .into_iter()
            .map(
                |(m, tags, points)| json!({"metric": m, "type": 3, "points": points, "tags": tags}),
            )
            .collect();
        json!({ "series": series })
    }

    /// Algorithm names that need escaping, keys Datadog maps or refuses, numbers at the edges.
    const NAMES: [&str; 5] = ["credit", "fr\"aud\\", "crédit", "tab\there", "ctl\u{1}x"];
    const KEYS: [&str; 6] = ["risk score", "a-b/c", "é", "count", "9lives", "ok.name"];
    const VALUES: [&str; 6] = [
        "0.25",
        "-3",
        "18446744073709551615",
        "1e300",
        "-0.0",
        "12345678.125",
    ];

    /// Payloads of every shape the encoder must read alike: keys Datadog maps or refuses,
    /// strings that need escaping, values that are not metrics, numbers at the edges.
    fn varied(n: usize) -> Vec<String> {
        let (names, keys, values) = (NAMES, KEYS, VALUES);
        (0..n)
            .map(|i| {
                let mut p = serde_json::Map::new();
                for j in 0..(i % 4 + 1) {
                    let key = keys[(i + j) % keys.len()];
                    let value: Value =
                        serde_json::from_str(values[(i * 7 + j) % values.len()]).unwrap();
                    p.insert(key.into(), value);
                }
                if i % 5 == 0 {
                    p.insert("y".repeat(250), json!(1));
                }
                p.insert("flag".into(), json!(i % 2 == 0));
                p.insert("none".into(), Value::Null);
                p.insert("list".into(), json!([1, 2]));
                p.insert("text".into(), json!("7"));
                p.insert(keys::DURATION_MILLISECONDS.into(), json!(i % 50));
                p.insert(
                    keys::ALGORITHM_VERSION.into(),
                    json!(format!("1.{}.0", i % 3)),
                );
                p.insert(keys::REQUEST_ID.into(), json!(format!("req-{i}")));
                let time = format!("2026-12-02T00:{:02}:{:02}.500000", i / 60 % 60, i % 60);
                p.insert(keys::TIME.into(), json!(time));
                p.insert(keys::ALGORITHM_NAME.into(), json!(names[i % names.len()]));
                p.insert(keys::SESSION_ID.into(), json!(format!("ses-{}", i % 3)));
                p.insert(keys::ALGORITHM_OWNER.into(), json!("demo"));
                if i % 3 == 0 {
                    p.insert(keys::STATUS.into(), json!("error"));
                    p.insert(keys::ERROR_TYPE.into(), json!("AlgorithmError"));
                }
                Value::Object(p).to_string()
            })
            .collect()
    }

    #[test]
    fn bodies_say_what_the_payloads_json_says() {
        for legacy in [false, true] {
            let s = settings(legacy);
            let payloads = varied(400);
            let mut shared = Shared::default();
            let parts: Vec<Encoded> = payloads
                .iter()
                .enumerate()
                .map(|(i, p)| encode(&record(i as u64, p), &s, &mut shared).unwrap())
                .collect();
            assert_eq!(
                body_of(&parts, &shared),
                reference(&payloads, &s),
                "legacy {legacy}"
            );
            let refused: usize = parts.iter().map(|p| p.refused.len()).sum();
            assert_eq!(refused, 80, "the names over 200 characters");
            // Read in rounds, the caches trimmed between them, the bodies say the same.
            for round in payloads.chunks(37) {
                shared.trim();
                let parts: Vec<Encoded> = round
                    .iter()
                    .map(|p| encode(&record(0, p), &s, &mut shared).unwrap())
                    .collect();
                assert_eq!(body_of(&parts, &shared), reference(round, &s));
            }
        }
    }

    /// Payloads as the dispatcher hands them over, of the shapes [`varied`] has (names that
    /// need escaping, keys Datadog maps or refuses, numbers at the edges, the status keys):
    /// the series made from their values are, byte for byte, those read from their JSON.
    #[test]
    fn series_from_the_values_are_those_read_from_the_json() {
        use insights_payload::{
            AlgorithmRef, ExecutionStatus, MetricSet, Payload, RequestId, SessionId,
        };
        let (names, keys, values) = (NAMES, KEYS, VALUES);
        let session = SessionId::new();
        let payloads: Vec<EncodedPayload> = (0..300)
            .map(|i| {
                let mut metrics = MetricSet::new();
                for j in 0..(i % 4 + 1) {
                    let value: serde_json::Number =
                        serde_json::from_str(values[(i * 7 + j) % values.len()]).unwrap();
                    metrics
                        .insert(keys[(i + j) % keys.len()], value.into())
                        .unwrap();
                }
                if i % 5 == 0 {
                    metrics.insert(&"y".repeat(250), 1.into()).unwrap();
                }
                let nanos = 1_796_000_000_000_000_000 + i as i128 * 1_234_567_891;
                EncodedPayload::from_payload(Payload {
                    algorithm: AlgorithmRef {
                        owner: "demo".into(),
                        name: names[i % names.len()].into(),
                        version: format!("1.{}.0", i % 3),
                    },
                    session_id: session.clone(),
                    request_id: RequestId::new(),
                    duration_milliseconds: (i % 50) as u64,
                    time: time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap(),
                    metrics,
                    status: match i % 3 {
                        0 => Some(ExecutionStatus::Error {
                            error_type: "AlgorithmError".into(),
                        }),
                        1 => Some(ExecutionStatus::Success),
                        _ => None,
                    },
                    failed: i % 3 == 0,
                })
            })
            .collect();
        let jsons: Vec<String> = payloads.iter().map(|p| p.json.to_string()).collect();
        for (legacy, prefix) in [(false, "algorithmia."), (true, "algorithmia."), (false, "")] {
            let mut s = settings(legacy);
            s.metric_prefix = prefix.into();
            let (mut by_json, mut by_values) = (Shared::default(), Shared::default());
            let (mut read, mut made) = (Vec::new(), Vec::new());
            for (i, p) in payloads.iter().enumerate() {
                let seq = i as u64 + 10;
                read.push(encode(&record(seq, &p.json), &s, &mut by_json).unwrap());
                made.push(encode_known(seq, p, &s, &mut by_values));
            }
            for (a, b) in read.iter().zip(&made) {
                assert_eq!(
                    (a.seq, a.time_s, a.len, &a.refused),
                    (b.seq, b.time_s, b.len, &b.refused)
                );
            }
            let body = json_body(&read, &by_json);
            assert_eq!(
                String::from_utf8(json_body(&made, &by_values)).unwrap(),
                String::from_utf8(body.clone()).unwrap(),
                "legacy {legacy}, prefix {prefix:?}"
            );
            // And both say what the JSON says, read plainly.
            let body: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, reference(&jsons, &s));
            let refused: usize = made.iter().map(|p| p.refused.len()).sum();
            let expected = payloads
                .iter()
                .flat_map(|p| p.metrics.iter())
                .filter(|(k, _)| {
                    k.len() > 200
                        || (prefix.is_empty() && !k.starts_with(|c: char| c.is_ascii_alphabetic()))
                })
                .count();
            assert!(expected >= 60, "the names over 200 characters at least");
            assert_eq!(refused, expected, "prefix {prefix:?}");
        }
    }

    #[test]
    fn the_caches_forget_past_their_bound_and_with_new_settings() {
        let s = settings(false);
        let mut shared = Shared::default();
        let many = |from: usize| -> Vec<String> {
            (from..from + MAX_SHARED + 10)
                .map(|i| PAYLOAD.replace("\"count\"", &format!("\"m{i}\"")))
                .collect()
        };
        let first = many(0);
        for p in &first {
            encode(&record(0, p), &s, &mut shared).unwrap();
        }
        assert!(shared.by_key.len() > MAX_SHARED);
        shared.trim();
        assert!(shared.names.is_empty() && shared.tags.is_empty() && shared.by_key.is_empty());
        let second = many(MAX_SHARED);
        let parts: Vec<Encoded> = second[..50]
            .iter()
            .map(|p| encode(&record(0, p), &s, &mut shared).unwrap())
            .collect();
        assert_eq!(body_of(&parts, &shared), reference(&second[..50], &s));
        // Keys as long as a report allows, refused: bounded by their bytes too.
        for i in 0..60 {
            let long = format!(r#"{{"{i}{}":1,{}"#, "y".repeat(20_000), &PAYLOAD[1..]);
            encode(&record(0, &long), &s, &mut shared).unwrap();
        }
        assert!(shared.bytes > MAX_SHARED_BYTES);
        shared.trim();
        assert_eq!(shared.bytes, 0);
        // Another prefix and other tags: what was made for the old settings is not reused.
        shared.clear();
        let mut other = settings(false);
        other.metric_prefix = "other.".into();
        other.tags = vec!["team:x".into()];
        let (e, _) = (
            encode(&record(0, PAYLOAD), &other, &mut shared).unwrap(),
            (),
        );
        let body = body_of(&[e], &shared);
        assert_eq!(body, reference(&[PAYLOAD.to_string()], &other));
        assert_eq!(body["series"][0]["metric"], "other.risk_score");
    }

    #[test]
    fn a_key_given_twice_is_two_points_and_the_first_string_counts() {
        let twice = PAYLOAD.replace(
            "\"count\":3",
            "\"count\":3,\"count\":4,\"algorithm_name\":7,\"algorithm_name\":\"fraud\"",
        );
        let twice = twice.replacen("\"algorithm_name\":\"credit\",", "", 1);
        let (e, shared) = read(&record(0, &twice), &settings(false));
        let body = body_of(&[e], &shared);
        assert_eq!(body["series"][1]["metric"], "algorithmia.count");
        assert_eq!(body["series"][1]["points"][1]["value"], 4.0);
        assert_eq!(body["series"][1]["tags"][0], "algorithm_name:fraud");
    }

    #[test]
    fn integers_are_written_as_json_writes_them() {
        for n in [0, 7, -1, 10, 1796169601, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_i64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }
}
