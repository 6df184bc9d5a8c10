//! Retention: each level keeps what is younger than its age and within its byte bound; what
//! it prunes, and what arrives older than its horizon, is counted (in the store's figures and
//! in `/metrics`); queries read each level only where it holds whole windows.

use std::time::Duration;

use insights_series::{
    AlgorithmPath, Function, ManualClock, Query, Refusal, Retention, SeriesConfig, SeriesError,
    SeriesStore,
};

mod support;
use support::{at, ingest, micros, payload};

const T0: i64 = 1_699_999_200_000_000; // 2023-11-14T22:00:00Z: whole minutes and hours
const MIN: i64 = 60_000_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

fn store(
    dir: &std::path::Path,
    clock: &ManualClock,
    f: impl FnOnce(&mut SeriesConfig),
) -> SeriesStore {
    let mut config = SeriesConfig {
        clock: clock.clone().into(),
        checkpoint_interval: Duration::from_secs(3600),
        ..SeriesConfig::default()
    };
    f(&mut config);
    SeriesStore::open(dir, config).unwrap()
}

fn one(t: i64, v: f64) -> Vec<(String, bool)> {
    vec![(
        payload("acme", "scorer", "1.0.0", at(t), &[("risk", v)], 5),
        false,
    )]
}

fn query(function: Function, every: &str, from: i64, to: i64) -> Query {
    Query {
        algorithm: AlgorithmPath::new("acme", "scorer"),
        metric: "risk".into(),
        function,
        every: every.parse().unwrap(),
        from: at(from),
        to: at(to),
        version: None,
    }
}

fn points(s: &SeriesStore, q: &Query) -> Vec<(i64, f64, u64)> {
    let r = s.query(q).unwrap();
    r.series
        .iter()
        .flat_map(|v| v.points.iter().map(|p| (micros(p.time), p.value, p.count)))
        .collect()
}

#[test]
fn raw_points_expire_with_their_age_while_rollups_keep_them() {
    let clock = ManualClock::new(at(T0));
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &clock, |_| {});
    for i in 0..30 {
        ingest(&s, &one(T0 - 30 * MIN + i * MIN, i as f64));
    }
    assert_eq!(
        s.stats().levels.raw.entries,
        30 * 4,
        "risk, duration and the two derived series"
    );
    let ten_seconds = query(Function::Max, "10s", T0 - HOUR, T0);
    assert_eq!(points(&s, &ten_seconds).len(), 30);

    clock.advance(Duration::from_secs(3600 + 60));
    s.prune();
    let st = s.stats();
    assert_eq!(st.levels.raw.entries, 0);
    assert_eq!(st.levels.raw.bytes, 0);
    assert_eq!(st.levels.raw.pruned_age, 120);
    assert_eq!(st.levels.minute.pruned_age, 0);
    // 10 s windows need raw points: they are gone. 1-minute windows are still there.
    assert!(points(&s, &ten_seconds).is_empty());
    let minutes = points(&s, &query(Function::Max, "1m", T0 - HOUR, T0));
    assert_eq!(minutes.len(), 30);
    assert_eq!(minutes[29], (T0 - MIN, 29.0, 1));
}

#[test]
fn late_points_are_dropped_from_each_level_they_are_too_old_for_and_counted() {
    let clock = ManualClock::new(at(T0));
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &clock, |_| {});
    let r = s.ingest(&one(T0 - 2 * HOUR, 1.0)[0].0, false).unwrap();
    assert_eq!(
        (r.late_points.raw, r.late_points.minute, r.late_points.hour),
        (4, 0, 0)
    );
    let r = s.ingest(&one(T0 - 31 * DAY, 2.0)[0].0, false).unwrap();
    assert_eq!(
        (r.late_points.raw, r.late_points.minute, r.late_points.hour),
        (4, 4, 0)
    );
    let r = s.ingest(&one(T0 - 401 * DAY, 3.0)[0].0, false).unwrap();
    assert_eq!(
        (r.late_points.raw, r.late_points.minute, r.late_points.hour),
        (4, 4, 4)
    );
    let st = s.stats();
    assert_eq!(
        (
            st.levels.raw.late_points,
            st.levels.minute.late_points,
            st.levels.hour.late_points
        ),
        (12, 8, 4)
    );
    let hours = points(&s, &query(Function::Sum, "1h", T0 - 402 * DAY, T0));
    assert_eq!(hours, [(T0 - 31 * DAY, 2.0, 1), (T0 - 2 * HOUR, 1.0, 1)]);
    // The point of a year ago is counted nowhere: no level holds it.
    let info = s.metrics(&AlgorithmPath::new("acme", "scorer"));
    let risk = info[0].metrics.iter().find(|m| m.metric == "risk").unwrap();
    assert_eq!(risk.count, 2);
}

#[test]
fn payloads_from_the_future_are_refused() {
    let clock = ManualClock::new(at(T0));
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &clock, |_| {});
    s.ingest(&one(T0 + 9 * MIN, 1.0)[0].0, false).unwrap();
    match s.ingest(&one(T0 + 11 * MIN, 1.0)[0].0, false) {
        Err(SeriesError::Refused(Refusal::InFuture(t))) => {
            assert!(t == "2023-11-14T22:11:00.000000", "{t}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_byte_bound_prunes_the_oldest_windows_first_and_counts_it_in_metrics() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let clock = ManualClock::new(at(T0));
    let dir = tempfile::tempdir().unwrap();
    let bound = 64 * 1024;
    metrics::with_local_recorder(&recorder, || {
        let s = store(dir.path(), &clock, |c| {
            c.minute = Retention {
                age: Duration::from_secs(30 * 86_400),
                max_bytes: bound,
            };
        });
        // One payload a minute for 2000 minutes, all within every level's age.
        for i in 0..2000 {
            ingest(&s, &one(T0 - 2000 * MIN + i * MIN, i as f64));
        }
        let st = s.stats();
        assert!(st.levels.minute.bytes <= bound, "{st:?}");
        assert!(st.levels.minute.pruned_bytes > 0);
        assert_eq!(st.levels.minute.pruned_age, 0);
        let horizon = micros(st.levels.minute.horizon);
        assert!(horizon > T0 - 2000 * MIN && horizon < T0, "{st:?}");
        // The newest windows are all there, the oldest gone; the hour level still has it all.
        let minutes = points(&s, &query(Function::Count, "1m", T0 - 2000 * MIN, T0));
        assert!(
            minutes.len() < 2000 && minutes.len() > 50,
            "{}",
            minutes.len()
        );
        assert_eq!(minutes.last().unwrap().0, T0 - MIN);
        assert_eq!(
            minutes[0].0, horizon,
            "the oldest answered window starts at the horizon"
        );
        let hours = points(&s, &query(Function::Count, "1h", T0 - 2000 * MIN, T0));
        assert_eq!(hours.iter().map(|p| p.2).sum::<u64>(), 2000);
        // A point older than the byte horizon is late for that level now.
        let r = s.ingest(&one(horizon - MIN, 0.0)[0].0, false).unwrap();
        assert_eq!(r.late_points.minute, 4);
    });
    let text = handle.render();
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} not in\n{text}"))
            .to_string()
    };
    let pruned = line(r#"insights_series_pruned_total{level="1m",reason="bytes"}"#);
    assert!(
        pruned.split(' ').nth(1).unwrap().parse::<u64>().unwrap() > 0,
        "{pruned}"
    );
    let bytes: f64 = line(r#"insights_series_bytes{level="1m"}"#)
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(bytes > 0.0 && bytes <= bound as f64);
    line(r#"insights_series_points_late_total{level="1m"}"#);
    line("insights_series_payloads_ingested_total 2001");
    assert!(
        text.contains("# HELP insights_series_pruned_total"),
        "described"
    );
}

#[test]
fn the_raw_byte_bound_holds_and_queries_fall_back_to_rollups_where_raw_points_are_gone() {
    let clock = ManualClock::new(at(T0));
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &clock, |c| {
        c.raw = Retention {
            age: Duration::from_secs(3600),
            max_bytes: 16 * 1024,
        };
    });
    // 4 points a payload, 16 bytes each: 16 KiB holds 256 payloads; give 600 in 10 minutes.
    let payloads: Vec<_> = (0..600)
        .flat_map(|i| one(T0 - 10 * MIN + i * 1_000_000, (i % 10) as f64))
        .collect();
    for chunk in payloads.chunks(50) {
        ingest(&s, chunk);
    }
    let st = s.stats();
    assert!(st.levels.raw.bytes <= 16 * 1024);
    assert!(st.levels.raw.pruned_bytes > 0);
    let raw_horizon = micros(st.levels.raw.horizon);
    // p99 per minute: raw points (exact) from the horizon on, 1-minute sketches before it.
    let r = s
        .query(&query(Function::P99, "1m", T0 - 10 * MIN, T0))
        .unwrap();
    assert_eq!(r.series[0].points.len(), 10);
    assert_eq!(r.sources.len(), 2, "{:?}", r.sources);
    assert_eq!(r.sources[0].level, insights_series::Level::Minute);
    assert_eq!(r.sources[1].level, insights_series::Level::Raw);
    let first_whole_minute = raw_horizon + (MIN - raw_horizon.rem_euclid(MIN)) % MIN;
    assert_eq!(micros(r.sources[1].from), first_whole_minute);
    for p in &r.series[0].points {
        assert_eq!(p.count, 60);
        assert!((p.value - 9.0).abs() <= 0.09, "{p:?}");
    }
}

#[test]
fn a_series_whose_data_is_all_pruned_is_forgotten() {
    let clock = ManualClock::new(at(T0));
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), &clock, |c| {
        c.minute.age = Duration::from_secs(3600);
        c.hour.age = Duration::from_secs(7200);
    });
    ingest(&s, &one(T0 - MIN, 1.0));
    assert_eq!(s.stats().series, 4);
    assert_eq!(s.metrics(&AlgorithmPath::new("acme", "scorer")).len(), 1);
    clock.advance(Duration::from_secs(3 * 3600));
    s.prune();
    assert_eq!(s.stats().series, 0);
    assert_eq!(s.stats().versions, 0);
    assert!(s.metrics(&AlgorithmPath::new("acme", "scorer")).is_empty());
    // And it comes back when it reports again.
    ingest(&s, &one(T0 + 3 * HOUR - MIN, 2.0));
    assert_eq!(
        points(&s, &query(Function::Last, "1m", T0, T0 + 3 * HOUR)),
        [(T0 + 3 * HOUR - MIN, 2.0, 1)]
    );
}
