//! Random payload streams (random times, out of order, ties, several versions and metrics,
//! random batches) against a brute-force computation over the same payloads: every function,
//! over random windows and ranges, must give exactly the brute-force answer (`mean`, `min`,
//! `max`, `sum`, `count`, `last`, and quantiles served from raw points), or one within the
//! sketch's relative error (quantiles served from rollups); the same windows must be present.
//! The brute force reads the payloads' JSON with serde_json, independently of the store's
//! parser, and sums exactly in 128-bit fixed point.

use std::collections::BTreeMap;
use std::time::Duration;

use insights_series::{
    AlgorithmPath, EXECUTIONS, FAILURES, Function, Incoming, ManualClock, Query, RELATIVE_ERROR,
    SeriesConfig, SeriesStore,
};
use proptest::prelude::*;

mod support;
use support::{at, micros, payload};

const BASE: i64 = 1_700_000_000_000_000; // 2023-11-14T22:13:20Z
const SPAN: i64 = 3 * 3_600_000_000; // payload times fall in 3 hours
const NOW: i64 = BASE + SPAN + 60_000_000;
const RAW_AGE: i64 = 3_600_000_000;
const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];
const METRICS: [&str; 3] = ["a", "b", "c"];
const EVERY: [&str; 9] = ["10s", "30s", "1m", "90s", "5m", "1h", "2h", "1d", "7m"];

#[derive(Debug, Clone)]
struct Gen {
    version: usize,
    time: i64,
    metrics: Vec<(usize, f64)>,
    failed: bool,
    duration: u64,
}

/// Values whose exact sum fits 128-bit fixed point with 70 fractional bits: zero or
/// |v| ≥ 2^-17 (so every bit of v is at or above 2^-70) and |v| < 2^40.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-1000i64..1000).prop_map(|i| i as f64),
        (-1_000_000_000i64..1_000_000_000).prop_map(|m| m as f64 / 1000.0),
        (-1e6f64..1e6).prop_map(|v| if v.abs() < 1e-5 { 0.0 } else { v }),
        Just(0.2),
    ]
}

fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        (0..SPAN).prop_map(|t| BASE + t),
        // Whole 10 s marks: many points share a time, so `last` must break ties by arrival.
        (0..SPAN / 10_000_000).prop_map(|k| BASE + k * 10_000_000),
    ]
}

fn gen_payload() -> impl Strategy<Value = Gen> {
    (
        0..VERSIONS.len(),
        time(),
        proptest::collection::vec((0..METRICS.len(), value()), 0..4),
        any::<bool>(),
        0u64..5000,
    )
        .prop_map(|(version, time, metrics, failed, duration)| Gen {
            version,
            time,
            metrics,
            failed,
            duration,
        })
}

#[derive(Debug, Clone)]
struct Q {
    metric: usize,
    function: usize,
    every: usize,
    from: i64,
    len: i64,
    version: Option<usize>,
}

fn gen_query() -> impl Strategy<Value = Q> {
    (
        0..METRICS.len() + 3,
        0..Function::ALL.len(),
        0..EVERY.len(),
        (BASE - 3_600_000_000)..(BASE + SPAN + 3_600_000_000),
        1..(SPAN + 3_600_000_000),
        proptest::option::of(0..VERSIONS.len()),
    )
        .prop_map(|(metric, function, every, from, len, version)| Q {
            metric,
            function,
            every,
            from,
            len,
            version,
        })
}

fn metric_name(i: usize) -> &'static str {
    match i {
        0..3 => METRICS[i],
        3 => "duration_milliseconds",
        4 => EXECUTIONS,
        _ => FAILURES,
    }
}

/// The points of one series as the brute force sees them: (time, value, arrival).
type Points = Vec<(i64, f64, usize)>;

/// Reads every payload back with serde_json, not with the store's parser.
fn brute_points(jsons: &[(String, bool)]) -> BTreeMap<(String, String), Points> {
    let mut out: BTreeMap<(String, String), Points> = BTreeMap::new();
    for (arrival, (json, failed)) in jsons.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        let o = v.as_object().unwrap();
        let version = o["algorithm_version"].as_str().unwrap().to_string();
        let t = micros(
            time::PrimitiveDateTime::parse(
                o["time"].as_str().unwrap(),
                &time::format_description::well_known::Iso8601::DEFAULT,
            )
            .unwrap()
            .assume_utc(),
        );
        let mut push = |metric: &str, value: f64| {
            out.entry((version.clone(), metric.to_string()))
                .or_default()
                .push((t, value, arrival));
        };
        for (k, val) in o {
            if let Some(n) = val.as_f64() {
                push(k, n);
            }
        }
        push(EXECUTIONS, 1.0);
        push(FAILURES, if *failed { 1.0 } else { 0.0 });
    }
    out
}

fn exact_sum(values: &[f64]) -> f64 {
    const SCALE: f64 = (1u128 << 70) as f64;
    let total: i128 = values.iter().map(|v| (v * SCALE) as i128).sum();
    total as f64 / SCALE
}

fn brute(points: &[(i64, f64, usize)], function: Function) -> f64 {
    let mut values: Vec<f64> = points.iter().map(|p| p.1).collect();
    match function {
        Function::Mean => exact_sum(&values) / values.len() as f64,
        Function::Sum => exact_sum(&values),
        Function::Min => values.iter().copied().fold(f64::INFINITY, f64::min),
        Function::Max => values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        Function::Count => values.len() as f64,
        Function::Last => points.iter().max_by_key(|p| (p.0, p.2)).unwrap().1,
        f => {
            values.sort_by(f64::total_cmp);
            values[(f.quantile().unwrap() * (values.len() as f64 - 1.0)) as usize]
        }
    }
}

fn align_down(t: i64, w: i64) -> i64 {
    t - t.rem_euclid(w)
}

fn align_up(t: i64, w: i64) -> i64 {
    let d = align_down(t, w);
    if d == t { t } else { d + w }
}

fn store(dir: &std::path::Path) -> SeriesStore {
    let config = SeriesConfig {
        clock: ManualClock::new(at(NOW)).into(),
        raw: insights_series::Retention {
            age: Duration::from_micros(RAW_AGE as u64),
            max_bytes: 1 << 30,
        },
        ..SeriesConfig::default()
    };
    SeriesStore::open(dir, config).unwrap()
}

fn check(payloads: &[Gen], batch_sizes: &[usize], queries: &[Q]) -> Result<(), TestCaseError> {
    let jsons: Vec<(String, bool)> = payloads
        .iter()
        .map(|g| {
            let metrics: Vec<(&str, f64)> =
                g.metrics.iter().map(|(m, v)| (METRICS[*m], *v)).collect();
            let json = payload(
                "acme",
                "scorer",
                VERSIONS[g.version],
                at(g.time),
                &metrics,
                g.duration,
            );
            (json, g.failed)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut rest = &jsons[..];
    let mut sizes = batch_sizes.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).min(rest.len());
        let batch: Vec<_> = rest[..n]
            .iter()
            .map(|(j, f)| Incoming::new(j, *f))
            .collect();
        let r = s.ingest_batch(&batch).unwrap();
        prop_assert_eq!(r.accepted, n);
        rest = &rest[n..];
    }

    let truth = brute_points(&jsons);
    let raw_horizon = NOW - RAW_AGE;
    for q in queries {
        let function = Function::ALL[q.function];
        let every: insights_series::Every = EVERY[q.every].parse().unwrap();
        let w = every.as_secs() as i64 * 1_000_000;
        let metric = metric_name(q.metric);
        let query = Query {
            algorithm: AlgorithmPath::new("acme", "scorer"),
            metric: metric.to_string(),
            function,
            every,
            from: at(q.from),
            to: at(q.from + q.len),
            version: q.version.map(|v| VERSIONS[v].to_string()),
        };
        let got = s.query(&query).unwrap();
        let (a, b) = (align_down(q.from, w), align_up(q.from + q.len, w));
        prop_assert_eq!(micros(got.from), a);
        prop_assert_eq!(micros(got.to), b);
        // Raw points serve what is not a multiple of a minute, and quantiles where they reach.
        let raw_from = align_up(raw_horizon, w);
        let from_raw = |start: i64| {
            start >= raw_from && (w % 60_000_000 != 0 || function.quantile().is_some())
        };
        let mut expected = Vec::new();
        for (vi, version) in VERSIONS.iter().enumerate() {
            if q.version.is_some_and(|want| want != vi) {
                continue;
            }
            let Some(points) = truth.get(&(version.to_string(), metric.to_string())) else {
                continue;
            };
            let mut windows: BTreeMap<i64, Points> = BTreeMap::new();
            for p in points {
                let start = align_down(p.0, w);
                let kept = w % 60_000_000 == 0 || start >= raw_from;
                if start >= a && start < b && kept {
                    windows.entry(start).or_default().push(*p);
                }
            }
            if !windows.is_empty() {
                expected.push((version.to_string(), windows));
            }
        }
        prop_assert_eq!(
            got.series
                .iter()
                .map(|s| s.version.clone())
                .collect::<Vec<_>>(),
            expected.iter().map(|e| e.0.clone()).collect::<Vec<_>>(),
            "{:?}",
            q
        );
        for (series, (version, windows)) in got.series.iter().zip(&expected) {
            let starts: Vec<i64> = series.points.iter().map(|p| micros(p.time)).collect();
            prop_assert_eq!(
                &starts,
                &windows.keys().copied().collect::<Vec<_>>(),
                "{} {:?}",
                version,
                q
            );
            for (p, (start, pts)) in series.points.iter().zip(windows) {
                prop_assert_eq!(p.count, pts.len() as u64);
                let want = brute(pts, function);
                if function.is_exact() || from_raw(*start) {
                    prop_assert_eq!(
                        p.value.to_bits(),
                        want.to_bits(),
                        "{} at {} got {} want {} ({:?})",
                        version,
                        start,
                        p.value,
                        want,
                        q
                    );
                } else {
                    let tolerance = RELATIVE_ERROR * want.abs() * (1.0 + 1e-9) + 1e-9;
                    prop_assert!(
                        (p.value - want).abs() <= tolerance,
                        "{} at {}: {} is not within 1% of {} ({:?})",
                        version,
                        start,
                        p.value,
                        want,
                        q
                    );
                }
            }
        }
    }

    // The catalog: every metric seen, with its first and last time and its count.
    let listed = s.metrics(&AlgorithmPath::new("acme", "scorer"));
    let mut want: BTreeMap<String, Vec<(String, i64, i64, u64)>> = BTreeMap::new();
    for ((version, metric), points) in &truth {
        let first = points.iter().map(|p| p.0).min().unwrap();
        let last = points.iter().map(|p| p.0).max().unwrap();
        want.entry(version.clone()).or_default().push((
            metric.clone(),
            first,
            last,
            points.len() as u64,
        ));
    }
    let got: BTreeMap<String, Vec<(String, i64, i64, u64)>> = listed
        .into_iter()
        .map(|v| {
            let m = v
                .metrics
                .into_iter()
                .map(|m| (m.metric, micros(m.first_seen), micros(m.last_seen), m.count))
                .collect();
            (v.version, m)
        })
        .collect();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_function_matches_brute_force(
        payloads in proptest::collection::vec(gen_payload(), 1..250),
        batch_sizes in proptest::collection::vec(1usize..80, 1..5),
        queries in proptest::collection::vec(gen_query(), 1..40),
    ) {
        check(&payloads, &batch_sizes, &queries)?;
    }
}

/// Many points in few windows, so the quantiles of rollups are tested on real distributions
/// (a sketch answers exactly when a window holds a handful of values).
#[test]
fn rollup_quantiles_are_within_the_stated_error_on_large_windows() {
    let payloads: Vec<Gen> = (0..6000)
        .map(|i| Gen {
            version: i % 2,
            time: BASE + (i as i64 * 7919 % 6000) * 1_000_000,
            metrics: vec![
                (0, ((i * 104_729) % 10_007) as f64 / 10.0 - 300.0),
                (1, 1.0 + (i % 977) as f64 * 1.37),
            ],
            failed: i % 7 == 0,
            duration: (i % 300) as u64,
        })
        .collect();
    let queries: Vec<Q> = (0..METRICS.len() + 3)
        .flat_map(|metric| {
            [6, 7, 8, 9].into_iter().flat_map(move |function| {
                [2, 4, 5].into_iter().map(move |every| Q {
                    metric,
                    function,
                    every,
                    from: BASE - 3_600_000_000,
                    len: SPAN + 7_200_000_000,
                    version: None,
                })
            })
        })
        .collect();
    check(&payloads, &[1024], &queries).unwrap();
}
