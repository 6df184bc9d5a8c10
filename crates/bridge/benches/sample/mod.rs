//! The payload both bridge benchmarks use: the shape the runtime produces, with three reported
//! metrics (a float, a 0/1 and an integer), as the credit-card demo algorithm reports them.

use serde_json::json;

pub(crate) fn payload(i: usize) -> String {
    json!({
        "risk_score": (i % 1000) as f64 / 1000.0,
        "approved": i % 2,
        "credit_limit": i % 9000,
        "duration_milliseconds": i % 50,
        "algorithm_version": "1.0.0",
        "request_id": format!("req-00000000-0000-0000-0000-{i:012}"),
        "time": format!("2021-02-20T{:02}:{:02}:{:02}.{:06}", (i / 3600) % 24, (i / 60) % 60, i % 60, i % 1_000_000),
        "algorithm_name": format!("algo_{}", i % 8),
        "session_id": "rses-f28bb94a-5556-4aeb-a6d2-89493626bf4f",
        "algorithm_owner": "bench"
    })
    .to_string()
}
