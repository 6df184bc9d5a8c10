//! One aggregate of one metric over an arbitrary range, per version: what an alerting check
//! evaluates ("the mean of `risk_score` over the last 5 minutes", every minute).
//!
//! A [`Query`](crate::Query) answers windows aligned to multiples of its `every`; a check's
//! window slides with its schedule instead, so it is not one of them. The range is cut into
//! segments served by the coarsest level whose windows divide its bounds (the same plan as a
//! query's), and everything in it is merged into one accumulator: `mean`, `min`, `max`, `sum`,
//! `count` and `last` stay exact; a quantile is exact where only raw points serve the range,
//! and within the sketch's relative error where a rollup takes part.

use time::OffsetDateTime;

use crate::model::{Level, Micros, micros};
use crate::params::{AlgorithmPath, Function};
use crate::query::{Acc, plan, version_order};
use crate::{SeriesError, SeriesStore};

/// One metric of one algorithm aggregated over `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeAggregate {
    pub algorithm: AlgorithmPath,
    pub metric: String,
    pub function: Function,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// Only these versions; every version when empty.
    pub versions: Vec<String>,
}

/// The aggregate of one version over the range; versions without points in it are absent.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionAggregate {
    pub version: String,
    pub value: f64,
    pub count: u64,
    /// The newest point's time in the range.
    pub last_time: OffsetDateTime,
}

impl SeriesStore {
    /// Aggregates `q.metric` over `[q.from, q.to)` per version, in version order. The bounds
    /// are used to the microsecond where raw points serve; where only rollups do, the range
    /// is widened to whole minutes (or hours) and the answer covers that.
    pub fn aggregate(&self, q: &RangeAggregate) -> Result<Vec<VersionAggregate>, SeriesError> {
        if q.from >= q.to {
            return Err(SeriesError::EmptyRange {
                from: q.from.to_string(),
                to: q.to.to_string(),
            });
        }
        let from = micros(q.from);
        let to = micros(q.to);
        // The finest unit that divides both bounds picks which levels may serve.
        let unit = [Level::Hour, Level::Minute]
            .into_iter()
            .map(Level::width)
            .find(|&w| from % w == 0 && to % w == 0)
            .unwrap_or(1);
        Ok(self.with_state(|state, horizons| {
            let segments = plan(q.function, unit, from, to, horizons);
            let mut out = Vec::new();
            for &vid in state.algorithm(&q.algorithm.owner, &q.algorithm.name) {
                let v = state.versions.get(vid).expect("indexed versions are live");
                if !q.versions.is_empty() && !q.versions.iter().any(|w| **w == *v.version) {
                    continue;
                }
                let Some(s) = v
                    .metrics
                    .get(q.metric.as_str())
                    .and_then(|&sid| state.series.get(sid))
                else {
                    continue;
                };
                let mut acc = Acc::new(q.function);
                let mut last: Micros = Micros::MIN;
                for seg in &segments {
                    match seg.level {
                        Level::Raw => {
                            for p in s.raw.range(seg.from, seg.to) {
                                last = last.max(p.time);
                                acc.add_point(p);
                            }
                        }
                        Level::Minute | Level::Hour => {
                            let windows = if seg.level == Level::Minute {
                                &s.minute
                            } else {
                                &s.hour
                            };
                            for w in windows.range(seg.from, seg.to) {
                                last = last.max(w.last_time);
                                acc.add_window(w);
                            }
                        }
                    }
                }
                if acc.count == 0 {
                    continue;
                }
                acc.start = from;
                let mut points = Vec::with_capacity(1);
                acc.emit(&mut points);
                let p = points[0];
                out.push(VersionAggregate {
                    version: v.version.to_string(),
                    value: p.value,
                    count: p.count,
                    last_time: crate::model::datetime(last),
                });
            }
            out.sort_by(|a, b| version_order(&a.version, &b.version));
            out
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, SeriesConfig};
    use time::macros::datetime;

    fn payload(t: &str, version: &str, risk: f64) -> String {
        format!(
            r#"{{"risk_score":{risk},"duration_milliseconds":3,"algorithm_owner":"o","algorithm_name":"n","algorithm_version":"{version}","request_id":"r","time":"{t}","session_id":"s"}}"#
        )
    }

    fn store(now: OffsetDateTime) -> (tempfile::TempDir, SeriesStore) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(now);
        let cfg = SeriesConfig {
            clock: clock.into(),
            ..SeriesConfig::default()
        };
        let s = SeriesStore::open(dir.path(), cfg).unwrap();
        (dir, s)
    }

    fn q(function: Function, from: OffsetDateTime, to: OffsetDateTime) -> RangeAggregate {
        RangeAggregate {
            algorithm: AlgorithmPath::new("o", "n"),
            metric: "risk_score".into(),
            function,
            from,
            to,
            versions: vec![],
        }
    }

    #[test]
    fn a_sliding_window_takes_exactly_the_points_inside_it() {
        let (_d, s) = store(datetime!(2026-12-01 12:10 UTC));
        for (t, v) in [
            ("2026-12-01T12:00:59.000000", 100.0), // before the window
            ("2026-12-01T12:01:00.000000", 0.2),
            ("2026-12-01T12:03:30.000000", 0.9),
            ("2026-12-01T12:05:59.999999", 0.4),
            ("2026-12-01T12:06:00.000000", 100.0), // at `to`: outside
        ] {
            s.ingest(&payload(t, "1.0.0", v), false).unwrap();
        }
        s.ingest(&payload("2026-12-01T12:02:00.000000", "2.0.0", 0.5), false)
            .unwrap();
        let from = datetime!(2026-12-01 12:01 UTC);
        let to = datetime!(2026-12-01 12:06 UTC);
        let mean = s.aggregate(&q(Function::Mean, from, to)).unwrap();
        assert_eq!(mean.len(), 2);
        assert_eq!(mean[0].version, "1.0.0");
        assert_eq!(mean[0].count, 3);
        assert!((mean[0].value - 0.5).abs() < 1e-12, "{}", mean[0].value);
        assert_eq!(mean[0].last_time, datetime!(2026-12-01 12:05:59.999999 UTC));
        assert_eq!((mean[1].version.as_str(), mean[1].value), ("2.0.0", 0.5));
        let max = s.aggregate(&q(Function::Max, from, to)).unwrap();
        assert_eq!(max[0].value, 0.9);
        let p50 = s.aggregate(&q(Function::P50, from, to)).unwrap();
        assert_eq!(p50[0].value, 0.4);
        let mut only = q(Function::Count, from, to);
        only.versions = vec!["2.0.0".into()];
        let only = s.aggregate(&only).unwrap();
        assert_eq!((only.len(), only[0].count), (1, 1));
        // An empty window answers nothing rather than zero.
        let empty = s
            .aggregate(&q(
                Function::Mean,
                datetime!(2026-12-01 12:07 UTC),
                datetime!(2026-12-01 12:08 UTC),
            ))
            .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn past_the_raw_period_rollups_serve_and_stay_exact() {
        // Two hours of data, one point a minute; the raw level holds only the last hour.
        let (_d, s) = store(datetime!(2026-12-01 14:00 UTC));
        let mut values = Vec::new();
        for m in 0..120 {
            let v = (m % 7) as f64 / 10.0;
            values.push(v);
            let t = datetime!(2026-12-01 12:00 UTC) + time::Duration::minutes(m);
            let t = t
                .format(time::macros::format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
                ))
                .unwrap();
            s.ingest(&payload(&t, "1.0.0", v), false).unwrap();
        }
        let from = datetime!(2026-12-01 12:30 UTC);
        let to = datetime!(2026-12-01 13:30 UTC);
        let want: Vec<f64> = values[30..90].to_vec();
        let sum = s.aggregate(&q(Function::Sum, from, to)).unwrap();
        let exact: f64 = want.iter().sum();
        assert!(
            (sum[0].value - exact).abs() < 1e-9,
            "{} vs {exact}",
            sum[0].value
        );
        assert_eq!(sum[0].count, 60);
        let min = s.aggregate(&q(Function::Min, from, to)).unwrap();
        assert_eq!(min[0].value, 0.0);
        let p90 = s.aggregate(&q(Function::P90, from, to)).unwrap();
        let mut sorted = want.clone();
        sorted.sort_by(f64::total_cmp);
        let exact_p90 = sorted[(0.9 * 59.0) as usize];
        assert!(
            (p90[0].value - exact_p90).abs() <= exact_p90 * crate::RELATIVE_ERROR + 1e-12,
            "{} vs {exact_p90}",
            p90[0].value
        );
    }
}
