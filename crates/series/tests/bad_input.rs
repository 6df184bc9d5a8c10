//! Bad input: a payload that cannot be read is refused with its reason and counted, the rest
//! of its batch is stored, and nothing panics, whatever the bytes. Query parameters that make
//! no sense are refused with a message that names them.

use std::time::Duration;

use insights_series::{
    AlgorithmPath, FAILURES, Function, Incoming, ManualClock, Query, Refusal, SeriesConfig,
    SeriesError, SeriesStore,
};
use proptest::prelude::*;

mod support;
use support::{at, payload};

const T0: i64 = 1_699_999_200_000_000;

fn store(dir: &std::path::Path) -> SeriesStore {
    let config = SeriesConfig {
        clock: ManualClock::new(at(T0)).into(),
        checkpoint_interval: Duration::from_secs(3600),
        ..SeriesConfig::default()
    };
    SeriesStore::open(dir, config).unwrap()
}

fn good(t: i64) -> String {
    payload("acme", "scorer", "1.0.0", at(t), &[("risk", 0.5)], 7)
}

fn q(metric: &str) -> Query {
    Query {
        algorithm: AlgorithmPath::new("acme", "scorer"),
        metric: metric.into(),
        function: Function::Count,
        every: "1h".parse().unwrap(),
        from: at(T0 - 86_400_000_000),
        to: at(T0 + 3_600_000_000),
        version: None,
    }
}

fn count(s: &SeriesStore, metric: &str) -> f64 {
    s.query(&q(metric))
        .unwrap()
        .series
        .iter()
        .flat_map(|v| &v.points)
        .map(|p| p.value)
        .sum()
}

#[test]
fn bad_payloads_are_refused_by_reason_and_the_rest_of_the_batch_is_stored() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let dir = tempfile::tempdir().unwrap();
    let ok = good(T0 - 1000);
    let no_owner = ok.replace(r#","algorithm_owner":"acme""#, "");
    let bad_time = ok.replace(
        r#""time":"2023-11-14T21:59:59.999000""#,
        r#""time":"yesterday""#,
    );
    let future = good(T0 + 3_600_000_000);
    let strings = ok.replace(
        r#"{"risk":0.5"#,
        r#"{"risk":0.5,"label":"high","tags":["a"]"#,
    );
    let huge = ok.replace(
        r#"{"risk":0.5"#,
        &format!(r#"{{"risk":0.5,"pad":"{}""#, "x".repeat(1 << 20)),
    );
    let batch = [
        Incoming::new(&ok, false),
        Incoming::new("not json", false),
        Incoming::new(&no_owner, false),
        Incoming::new(&bad_time, false),
        Incoming::new(&future, false),
        Incoming::new("[]", false),
        Incoming::new(&strings, true),
        Incoming::new(&huge, false),
    ];
    let r = metrics::with_local_recorder(&recorder, || {
        let s = store(dir.path());
        let r = s.ingest_batch(&batch).unwrap();
        assert_eq!(count(&s, "risk"), 2.0);
        assert_eq!(count(&s, FAILURES), 2.0);
        r
    });
    assert_eq!(r.accepted, 2);
    assert_eq!(r.values, 4, "risk and duration, twice");
    assert_eq!(r.skipped_values, 2, "the string and the array");
    let reasons: Vec<(usize, &str)> = r
        .refused
        .iter()
        .map(|x| (x.index, x.reason.label()))
        .collect();
    assert_eq!(
        reasons,
        [
            (1, "not_an_object"),
            (2, "missing_key"),
            (3, "bad_time"),
            (4, "in_future"),
            (5, "not_an_object"),
            (7, "too_large"),
        ]
    );
    assert_eq!(r.refused[1].reason, Refusal::MissingKey("algorithm_owner"));
    assert_eq!(
        r.refused[1].reason.to_string(),
        "the operational key `algorithm_owner` is missing or not of its type"
    );
    let text = handle.render();
    for line in [
        r#"insights_series_payloads_refused_total{reason="not_an_object"} 2"#,
        r#"insights_series_payloads_refused_total{reason="missing_key"} 1"#,
        r#"insights_series_payloads_refused_total{reason="bad_time"} 1"#,
        r#"insights_series_payloads_refused_total{reason="in_future"} 1"#,
        r#"insights_series_payloads_refused_total{reason="too_large"} 1"#,
        "insights_series_payloads_ingested_total 2",
        "insights_series_values_skipped_total 2",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
    }
}

#[test]
fn one_refused_payload_is_an_error_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let e = s.ingest(r#"{"a":1}"#, false).unwrap_err();
    assert!(
        matches!(e, SeriesError::Refused(Refusal::MissingKey(_))),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("payload refused: the operational key"),
        "{e}"
    );
}

#[test]
fn failures_from_kafka_come_from_the_status_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let ok = good(T0 - 1000);
    let failed = ok.replace(
        r#""algorithm_owner":"acme"}"#,
        r#""algorithm_owner":"acme","status":"error","error_type":"AlgorithmError"}"#,
    );
    let success = ok.replace(
        r#""algorithm_owner":"acme"}"#,
        r#""algorithm_owner":"acme","status":"success"}"#,
    );
    s.ingest_batch(&[
        Incoming::from_kafka(&failed),
        Incoming::from_kafka(&success),
        Incoming::from_kafka(&ok),
    ])
    .unwrap();
    let mut sum = q(FAILURES);
    sum.function = Function::Sum;
    let r = s.query(&sum).unwrap();
    assert_eq!(r.series[0].points[0].value, 1.0);
    assert_eq!(r.series[0].points[0].count, 3);
    sum.function = Function::Mean;
    assert_eq!(s.query(&sum).unwrap().series[0].points[0].value, 1.0 / 3.0);
}

#[test]
fn queries_refuse_an_empty_range_and_answer_nothing_for_what_is_not_there() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    s.ingest(&good(T0 - 1000), false).unwrap();
    let mut query = q("risk");
    query.to = query.from;
    let e = s.query(&query).unwrap_err();
    assert!(matches!(e, SeriesError::EmptyRange { .. }));
    assert!(e.to_string().starts_with("`from` ("), "{e}");
    assert!(s.query(&q("nope")).unwrap().series.is_empty());
    let mut other = q("risk");
    other.algorithm = AlgorithmPath::new("acme", "other");
    assert!(s.query(&other).unwrap().series.is_empty());
    let mut version = q("risk");
    version.version = Some("9.9.9".into());
    assert!(s.query(&version).unwrap().series.is_empty());
    version.version = Some("1.0.0".into());
    assert_eq!(s.query(&version).unwrap().series.len(), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any text at all: refused or taken, never a panic, and the store keeps working.
    #[test]
    fn any_text_is_refused_or_taken_never_a_panic(text in any::<String>(), cut in 0usize..400, byte in any::<u8>(), at_ in 0usize..400) {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        let base = good(T0 - 1000);
        let mut mangled = base.clone().into_bytes();
        let i = at_ % mangled.len();
        mangled[i] = byte;
        let mangled = String::from_utf8_lossy(&mangled).into_owned();
        let truncated = &base[..base.char_indices().map(|(i, _)| i).nth(cut % base.len()).unwrap_or(0)];
        let inputs = [text.as_str(), truncated, mangled.as_str()];
        let batch: Vec<_> = inputs.iter().map(|t| Incoming::from_kafka(t)).collect();
        let r = s.ingest_batch(&batch).unwrap();
        prop_assert_eq!(r.accepted + r.refused.len(), 3);
        s.ingest(&base, false).unwrap();
        prop_assert!(count(&s, "insights.executions") >= 1.0);
    }
}
