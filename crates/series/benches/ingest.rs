//! The series store on one core: ingest (metric values per second, payloads as the runtime
//! encodes them, in batches of 1024 as the dispatcher hands them over, written to the log) and
//! queries (a 30-day 1-minute `mean` of one metric; a 7-day 1-hour `p99`; a 24-hour 1-minute
//! `mean` over 10 versions), and a checkpoint of the 30-day store (how long ingest pauses).
//! Goals from issue 12: ≥ 1,000,000 values/s; the 30-day query ≤ 20 ms. It also prints the
//! bytes a payload costs in the log, the snapshot and memory.
//! `cargo bench -p insights-series --bench ingest`.

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use insights_series::{
    AlgorithmPath, Function, Incoming, ManualClock, Query, SeriesConfig, SeriesStore,
};

#[path = "../tests/support/mod.rs"]
mod support;

use support::{at, payload};

const START: i64 = 1_699_999_200_000_000; // 2023-11-14T22:00:00Z, in microseconds
const DAY: i64 = 86_400_000_000;

/// `n` payloads of 4 versions (2 algorithms × 2), one every 1 ms, a little out of order (as
/// executions of different lengths finish); `metrics` reported values each, plus the duration.
fn payloads(n: usize, metrics: usize) -> Vec<String> {
    let names: Vec<String> = (0..metrics).map(|i| format!("metric_{i}")).collect();
    (0..n)
        .map(|i| {
            let t = START + i as i64 * 1000 - ((i * 7919) % 50) as i64 * 1000;
            let values: Vec<(&str, f64)> = names
                .iter()
                .enumerate()
                .map(|(j, k)| (k.as_str(), ((i * 31 + j * 17) % 1000) as f64 / 1000.0))
                .collect();
            payload(
                "bench",
                ["credit_card_approval", "fraud"][i % 2],
                ["1.0.0", "1.1.0"][(i / 2) % 2],
                at(t),
                &values,
                (i % 50) as u64,
            )
        })
        .collect()
}

fn store(dir: &std::path::Path, now: i64) -> SeriesStore {
    let config = SeriesConfig {
        clock: ManualClock::new(at(now)).into(),
        // No checkpoint inside a measurement.
        checkpoint_interval: Duration::from_secs(3600),
        wal_max_bytes: 1 << 40,
        ..SeriesConfig::default()
    };
    SeriesStore::open(dir, config).unwrap()
}

/// What a payload costs: log bytes (before a checkpoint), then memory and snapshot bytes.
fn footprint(messages: &[String], metrics: usize) {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), START + 60_000_000);
    for chunk in messages.chunks(1024) {
        let batch: Vec<Incoming<'_>> = chunk.iter().map(|m| Incoming::new(m, false)).collect();
        s.ingest_batch(&batch).unwrap();
    }
    let st = s.stats();
    let n = messages.len() as f64;
    let json: usize = messages.iter().map(String::len).sum();
    s.checkpoint().unwrap();
    let snapshot = std::fs::metadata(dir.path().join("series/snapshot"))
        .unwrap()
        .len();
    eprintln!(
        "{metrics} metrics: JSON {:.0} B/payload, log {:.0} B/payload, memory raw {:.0} + 1m {:.0} + 1h {:.0} B/payload, snapshot {:.0} B/payload ({} payloads, 1m windows: {})",
        json as f64 / n,
        st.wal_bytes as f64 / n,
        st.levels.raw.bytes as f64 / n,
        st.levels.minute.bytes as f64 / n,
        st.levels.hour.bytes as f64 / n,
        snapshot as f64 / n,
        messages.len(),
        st.levels.minute.entries,
    );
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("ingest");
    group.sample_size(20);
    for metrics in [3, 10] {
        let messages = payloads(32_768, metrics);
        footprint(&messages, metrics);
        let values = messages.len() * (metrics + 1);
        group.throughput(Throughput::Elements(values as u64));
        group.bench_function(format!("{metrics}_metrics_values"), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().unwrap();
                    let s = store(dir.path(), START + 60_000_000);
                    (dir, s)
                },
                |(dir, s)| {
                    for chunk in messages.chunks(1024) {
                        let batch: Vec<Incoming<'_>> =
                            chunk.iter().map(|m| Incoming::new(m, false)).collect();
                        s.ingest_batch(&batch).unwrap();
                    }
                    (dir, s)
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

/// Ingests `per_version` payloads for each of `versions`, evenly over `days` before `end`.
fn fill(s: &SeriesStore, versions: usize, days: i64, per_version: usize, end: i64) {
    let step = days * DAY / per_version as i64;
    let mut batch = Vec::new();
    for i in 0..per_version {
        for v in 0..versions {
            let t = end - days * DAY + i as i64 * step + v as i64;
            batch.push(payload(
                "bench",
                "credit_card_approval",
                &format!("1.{v}.0"),
                at(t),
                &[
                    ("risk_score", ((i * 7 + v) % 1000) as f64 / 1000.0),
                    ("approved", (i % 2) as f64),
                ],
                (i % 50) as u64,
            ));
        }
        if batch.len() >= 1024 {
            let b: Vec<_> = batch.iter().map(|m| Incoming::new(m, false)).collect();
            s.ingest_batch(&b).unwrap();
            batch.clear();
        }
    }
    let b: Vec<_> = batch.iter().map(|m| Incoming::new(m, false)).collect();
    s.ingest_batch(&b).unwrap();
}

fn query(c: &mut Criterion) {
    let end = START + 31 * DAY;
    let query = |function, every: &str, days: i64| Query {
        algorithm: AlgorithmPath::new("bench", "credit_card_approval"),
        metric: "risk_score".into(),
        function,
        every: every.parse().unwrap(),
        from: at(end - days * DAY),
        to: at(end),
        version: None,
    };
    let mut group = c.benchmark_group("query");

    // One version, a payload every 20 s for 30 days: 43,200 one-minute windows.
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), end);
    fill(&s, 1, 30, 30 * 4320, end);
    let q = query(Function::Mean, "1m", 30);
    assert_eq!(s.query(&q).unwrap().series[0].points.len(), 43_200);
    group.bench_function("30d_mean_1m_one_metric", |b| {
        b.iter(|| s.query(&q).unwrap())
    });
    let q = query(Function::P99, "1h", 7);
    assert_eq!(s.query(&q).unwrap().series[0].points.len(), 168);
    group.bench_function("7d_p99_1h", |b| b.iter(|| s.query(&q).unwrap()));
    let st = s.stats();
    eprintln!(
        "30-day store: {} 1m windows, {:.0} B each; {} 1h windows; {} raw points",
        st.levels.minute.entries,
        st.levels.minute.bytes as f64 / st.levels.minute.entries as f64,
        st.levels.hour.entries,
        st.levels.raw.entries,
    );
    group.sample_size(10);
    group.bench_function("checkpoint_30d_store", |b| {
        b.iter(|| s.checkpoint().unwrap())
    });
    eprintln!(
        "30-day store snapshot: {} bytes",
        std::fs::metadata(dir.path().join("series/snapshot"))
            .unwrap()
            .len()
    );
    drop(s);

    // Ten versions, a payload every 10 s each for 24 hours.
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), end);
    fill(&s, 10, 1, 8640, end);
    let q = query(Function::Mean, "1m", 1);
    assert_eq!(s.query(&q).unwrap().series.len(), 10);
    group.bench_function("24h_mean_1m_10_versions", |b| {
        b.iter(|| s.query(&q).unwrap())
    });
    group.finish();
}

criterion_group!(benches, ingest, query);
criterion_main!(benches);
