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
