//! Payloads as the runtime makes them (through `Payload::to_json`, the one encoder), for the
//! tests and the benchmark.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part of it

use insights_payload::{AlgorithmRef, MetricSet, MetricValue, Payload, RequestId, SessionId};
use time::OffsetDateTime;

/// The exact JSON of one payload of `owner/name` `version`, started at `time`.
pub fn payload(
    owner: &str,
    name: &str,
    version: &str,
    time: OffsetDateTime,
    metrics: &[(&str, f64)],
    duration_milliseconds: u64,
) -> String {
    let mut set = MetricSet::new();
    for (k, v) in metrics {
        let n = serde_json::Number::from_f64(*v).expect("finite");
        set.insert(k, MetricValue::from(n)).expect("a valid metric");
    }
    Payload {
        algorithm: AlgorithmRef {
            owner: owner.into(),
            name: name.into(),
            version: version.into(),
        },
        session_id: SessionId::new(),
        request_id: RequestId::new(),
        duration_milliseconds,
        time,
        metrics: set,
        status: None,
        failed: false,
    }
    .to_json()
}

/// Microseconds since the epoch → a time.
pub fn at(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).expect("in range")
}

pub fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

/// Everything a reader can see of `owner/name` over `[from, to)`: every function at 10 s,
/// 1 min and 1 h windows for every metric listed, and the listing itself. Two stores holding
/// the same data answer the same dump.
pub fn dump(
    s: &insights_series::SeriesStore,
    owner: &str,
    name: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
) -> (
    Vec<insights_series::VersionMetrics>,
    Vec<insights_series::QueryResult>,
) {
    use insights_series::{AlgorithmPath, Function, Query};
    let algorithm = AlgorithmPath::new(owner, name);
    let listed = s.metrics(&algorithm);
    let mut metrics: Vec<String> = listed
        .iter()
        .flat_map(|v| v.metrics.iter().map(|m| m.metric.clone()))
        .collect();
    metrics.sort();
    metrics.dedup();
    let mut results = Vec::new();
    for metric in &metrics {
        for function in Function::ALL {
            for every in ["10s", "1m", "1h"] {
                let q = Query {
                    algorithm: algorithm.clone(),
                    metric: metric.clone(),
                    function,
                    every: every.parse().unwrap(),
                    from,
                    to,
                    version: None,
                };
                results.push(s.query(&q).unwrap());
            }
        }
    }
    (listed, results)
}

/// Deterministic payloads: batch `b` of `n`, for versions 1.0.0 and 2.0.0 of acme/scorer,
/// one every 100 ms from `start` (microseconds).
pub fn batch(b: usize, n: usize, start: i64) -> Vec<(String, bool)> {
    (0..n)
        .map(|i| {
            let k = b * n + i;
            let t = start + k as i64 * 100_000 - (k % 7) as i64 * 30_000;
            let json = payload(
                "acme",
                "scorer",
                ["1.0.0", "2.0.0"][k % 2],
                at(t),
                &[
                    ("risk", (k % 101) as f64 / 100.0),
                    ("score", (k * 37 % 1000) as f64 - 500.0),
                ],
                (k % 40) as u64,
            );
            (json, k.is_multiple_of(5))
        })
        .collect()
}

pub fn ingest(s: &insights_series::SeriesStore, payloads: &[(String, bool)]) {
    let batch: Vec<_> = payloads
        .iter()
        .map(|(j, f)| insights_series::Incoming::new(j, *f))
        .collect();
    let r = s.ingest_batch(&batch).unwrap();
    assert_eq!(r.accepted, payloads.len(), "{r:?}");
}
