//! The series store's ingest on the payloads `scripts/bench-series` makes (5 numeric values per
//! ~334-byte payload: 30 days of one version a minute, 24 hours of ten versions every 10 s, in
//! time order), live (the clock follows the payloads) and as a backfill, without influxd: for
//! measuring one change quickly and for `perf record`.
//!
//! `cargo run --release -p insights-series --example ingest_profile -- [live|backfill] [rounds]`

use std::time::{Duration, Instant};

use insights_series::{Incoming, ManualClock, SeriesConfig, SeriesStore};

#[path = "../tests/support/mod.rs"]
mod support;

use support::{at, payload};

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;
/// 2023-12-15T00:00:00Z, as in `crates/insights/benches/series.rs`.
const END: i64 = 1_702_598_400_000_000;
const VALUES_PER_PAYLOAD: usize = 5;

fn one(name: &str, version: &str, t: i64, i: usize, v: usize) -> (i64, String) {
    let metrics = [
        ("risk_score", ((i * 31 + v * 17) % 1000) as f64 / 1000.0),
        ("approved", (i % 2) as f64),
        ("amount", (i % 997) as f64 * 1.5),
        ("confidence", ((i * 13 + v) % 100) as f64 / 100.0),
    ];
    (
        t,
        payload("bench", name, version, at(t), &metrics, (i % 50) as u64),
    )
}

/// The same payloads as `bench_series`'s `data()`.
fn data() -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for i in 0..30 * 1440 {
        let t = END - 30 * DAY + i as i64 * MINUTE + ((i * 7919) % 50) as i64 * 1_000_000;
        out.push(one("credit_card_approval", "1.0.0", t, i, 0));
    }
    for i in 0..8640 {
        for v in 0..10 {
            let t = END - DAY + i as i64 * 10_000_000 + v as i64 * 1000;
            out.push(one("fraud_detection", &format!("1.{v}.0"), t, i, v));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// This thread's time on a CPU so far (`/proc/thread-self/schedstat`), in nanoseconds: on a
/// shared machine it counts what the ingest cost, not the time it waited for a core.
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Ingests every payload into a fresh store; returns the wall time and the CPU time it took.
fn ingest(dir: &std::path::Path, payloads: &[(i64, String)], live: bool) -> (Duration, Duration) {
    let clock = ManualClock::new(at(if live { payloads[0].0 } else { END }));
    let config = SeriesConfig {
        clock: clock.clone().into(),
        checkpoint_interval: Duration::from_secs(3600),
        wal_max_bytes: 1 << 40,
        ..SeriesConfig::default()
    };
    let store = SeriesStore::open(dir, config).unwrap();
    let mut values = 0;
    let cpu = cpu_ns();
    let start = Instant::now();
    for chunk in payloads.chunks(1024) {
        if live {
            clock.set(at(chunk[chunk.len() - 1].0 + 1_000_000));
        }
        let batch: Vec<Incoming<'_>> = chunk.iter().map(|(_, m)| Incoming::new(m, false)).collect();
        let report = store.ingest_batch(&batch).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        values += report.values;
    }
    let elapsed = start.elapsed();
    let cpu = Duration::from_nanos(cpu_ns() - cpu);
    assert_eq!(values, payloads.len() * VALUES_PER_PAYLOAD);
    (elapsed, cpu)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let live = args.first().is_none_or(|m| m != "backfill");
    let rounds: usize = args.get(1).map_or(3, |n| n.parse().expect("rounds"));
    let payloads = data();
    let bytes: usize = payloads.iter().map(|(_, p)| p.len()).sum();
    println!(
        "{} payloads, {:.0} B each, {}",
        payloads.len(),
        bytes as f64 / payloads.len() as f64,
        if live { "live" } else { "backfill" }
    );
    let values = (payloads.len() * VALUES_PER_PAYLOAD) as f64;
    let (mut rates, mut cpu_rates) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        let dir = tempfile::tempdir().unwrap();
        let (wall, cpu) = ingest(dir.path(), &payloads, live);
        let (rate, cpu_rate) = (values / wall.as_secs_f64(), values / cpu.as_secs_f64());
        println!(
            "round {}: {rate:.0} values/s ({:.3} s), {cpu_rate:.0} values per CPU second; load at start {}",
            round + 1,
            wall.as_secs_f64(),
            load.join(" ")
        );
        rates.push(rate);
        cpu_rates.push(cpu_rate);
    }
    for (what, mut v) in [("values/s", rates), ("values per CPU second", cpu_rates)] {
        v.sort_by(f64::total_cmp);
        println!(
            "median {:.0} {what} (min {:.0}, max {:.0})",
            v[v.len() / 2],
            v[0],
            v[v.len() - 1]
        );
    }
}
