//! Queries: one metric of one algorithm, aggregated per window of `every`, one series per
//! version.
//!
//! **Windows.** They start at multiples of `every` counted from the Unix epoch, and are always
//! whole: `from` is rounded down and `to` up to such a start, so that every answer can be
//! compared with the same computation over the payloads. A window without points is absent.
//!
//! **Which level answers.** A level can serve a window when its own window divides `every`
//! (raw points serve any `every`) and it holds the whole window (the window starts at or after
//! the level's horizon). For `mean`, `min`, `max`, `sum`, `count` and `last` every level gives
//! the same, exact, answer (exact sums merge exactly, see `exact.rs`), so the coarsest level
//! that fits serves: 1 h, then 1 min, then raw. For quantiles, raw points give the exact
//! quantile, so raw points serve the windows they hold (by default the last hour), and the
//! coarsest rollup (within the sketch's 1% error) the older ones. Each level serves the windows
//! it holds that a preferred level does not, so a range that reaches past the raw period
//! is answered from raw points where they are and from rollups before. An `every` that is not a
//! multiple of one minute can only be served from raw points: older windows are absent.

use time::OffsetDateTime;

use sketches_ddsketch::DDSketch;

use crate::exact::ExactSum;
use crate::model::{Level, Micros, PerLevel, align_down, align_up, datetime};
use crate::params::{AlgorithmPath, Every, Function};
use crate::rollup::{RawPoint, Window};
use crate::sketch;
use crate::state::{Series, State};

/// A query, as the HTTP layer resolves it.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub algorithm: AlgorithmPath,
    /// A reported metric, `duration_milliseconds`, or one of the derived
    /// [`EXECUTIONS`](crate::EXECUTIONS) and [`FAILURES`](crate::FAILURES).
    pub metric: String,
    pub function: Function,
    pub every: Every,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    /// Only this version; all versions when `None`.
    pub version: Option<String>,
}

/// One window's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The window's start.
    pub time: OffsetDateTime,
    pub value: f64,
    /// The points in the window.
    pub count: u64,
}

/// One version's windows, in time order.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionSeries {
    pub version: String,
    pub points: Vec<Point>,
}

/// Which level served which windows (those starting in `[from, to)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub level: Level,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// A query's answer: one series per version with points in the range, in version order
/// (semantic versions by precedence, others after them by name).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// `from` rounded down to a window start.
    pub from: OffsetDateTime,
    /// `to` rounded up to a window start.
    pub to: OffsetDateTime,
    pub series: Vec<VersionSeries>,
    /// The levels that served the range, oldest windows first. Windows before the first
    /// source's `from` are not kept by any level.
    pub sources: Vec<Source>,
}

/// A segment of the range and the level that serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub level: Level,
    pub from: Micros,
    pub to: Micros,
}

/// Which level serves which windows of `[from, to)` (both multiples of `every`); see the module
/// documentation. Oldest segment first.
pub(crate) fn plan(
    function: Function,
    every: Micros,
    from: Micros,
    to: Micros,
    horizons: &PerLevel<Micros>,
) -> Vec<Segment> {
    let preference = if function.is_exact() {
        [Level::Hour, Level::Minute, Level::Raw]
    } else {
        [Level::Raw, Level::Hour, Level::Minute]
    };
    let mut segments = Vec::new();
    let mut covered_from = to;
    for level in preference {
        if every % level.width() != 0 {
            continue;
        }
        let start = align_up(*horizons.get(level), every).max(from);
        if start < covered_from {
            segments.push(Segment {
                level,
                from: start,
                to: covered_from,
            });
            covered_from = start;
        }
    }
    segments.reverse();
    segments
}

pub(crate) fn run(state: &State, q: &Query, horizons: &PerLevel<Micros>) -> QueryResult {
    let every = q.every.micros();
    let from = align_down(crate::model::micros(q.from), every);
    let to = align_up(crate::model::micros(q.to), every);
    let segments = plan(q.function, every, from, to, horizons);
    let mut series = Vec::new();
    for &vid in state.algorithm(&q.algorithm.owner, &q.algorithm.name) {
        let v = state.versions.get(vid).expect("indexed versions are live");
        if q.version.as_deref().is_some_and(|want| want != &*v.version) {
            continue;
        }
        let Some(s) = v
            .metrics
            .get(q.metric.as_str())
            .and_then(|&sid| state.series.get(sid))
        else {
            continue;
        };
        let mut points = Vec::new();
        let mut acc = Acc::new(q.function);
        for seg in &segments {
            evaluate(s, seg, every, &mut acc, &mut points);
        }
        if points.is_empty() {
            continue;
        }
        series.push(VersionSeries {
            version: v.version.to_string(),
            points,
        });
    }
    series.sort_by(|a, b| version_order(&a.version, &b.version));
    QueryResult {
        from: datetime(from),
        to: datetime(to),
        series,
        sources: segments
            .iter()
            .map(|s| Source {
                level: s.level,
                from: datetime(s.from),
                to: datetime(s.to),
            })
            .collect(),
    }
}

/// Semantic versions by precedence, then anything else by name.
pub(crate) fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn evaluate(s: &Series, seg: &Segment, every: Micros, acc: &mut Acc, out: &mut Vec<Point>) {
    match seg.level {
        Level::Raw => {
            for p in s.raw.range(seg.from, seg.to) {
                let start = align_down(p.time, every);
                if acc.count > 0 && start != acc.start {
                    acc.emit(out);
                }
                if acc.count == 0 {
                    acc.start = start;
                }
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
                let start = align_down(w.start, every);
                if acc.count > 0 && start != acc.start {
                    acc.emit(out);
                }
                if acc.count == 0 {
                    acc.start = start;
                }
                acc.add_window(w);
            }
        }
    }
    // Segments end on window boundaries: a window never spans two of them.
    if acc.count > 0 {
        acc.emit(out);
    }
}

/// One window's aggregate as it is built; it computes only what its function needs.
pub(crate) struct Acc {
    function: Function,
    pub(crate) start: Micros,
    pub(crate) count: u64,
    min: f64,
    max: f64,
    last_time: Micros,
    last_value: f64,
    sum: ExactSum,
    sketch: Option<DDSketch>,
    /// Raw values, for exact quantiles.
    values: Vec<f64>,
}

impl Acc {
    pub(crate) fn new(function: Function) -> Self {
        Acc {
            function,
            start: 0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last_time: Micros::MIN,
            last_value: f64::NAN,
            sum: ExactSum::new(),
            sketch: None,
            values: Vec::new(),
        }
    }

    fn needs_sum(&self) -> bool {
        matches!(self.function, Function::Mean | Function::Sum)
    }

    pub(crate) fn add_point(&mut self, p: &RawPoint) {
        self.count += 1;
        self.min = self.min.min(p.value);
        self.max = self.max.max(p.value);
        // Points come in time order, ties in arrival order: a later one wins.
        if p.time >= self.last_time {
            self.last_time = p.time;
            self.last_value = p.value;
        }
        if self.needs_sum() {
            self.sum.add(p.value);
        }
        if self.function.quantile().is_some() {
            self.values.push(p.value);
        }
    }

    pub(crate) fn add_window(&mut self, w: &Window) {
        self.count += w.count;
        self.min = self.min.min(w.min);
        self.max = self.max.max(w.max);
        if w.last_time >= self.last_time {
            self.last_time = w.last_time;
            self.last_value = w.last_value;
        }
        if self.needs_sum() {
            self.sum.merge(&w.sum);
        }
        if self.function.quantile().is_some() {
            w.sketch
                .merge_into(self.sketch.get_or_insert_with(sketch::new_sketch));
        }
    }

    pub(crate) fn emit(&mut self, out: &mut Vec<Point>) {
        let value = match self.function {
            Function::Mean => self.sum.value() / self.count as f64,
            Function::Sum => self.sum.value(),
            Function::Min => self.min,
            Function::Max => self.max,
            Function::Count => self.count as f64,
            Function::Last => self.last_value,
            f => {
                let q = f.quantile().expect("the other functions are matched above");
                match self.sketch.take() {
                    Some(s) if self.values.is_empty() => {
                        sketch::quantile(&s, q).unwrap_or(f64::NAN)
                    }
                    // A range aggregate can span rollup windows and raw points: the raw
                    // values join the sketch, and the answer keeps the sketch's error.
                    Some(mut s) => {
                        for v in self.values.drain(..) {
                            s.add(v);
                        }
                        sketch::quantile(&s, q).unwrap_or(f64::NAN)
                    }
                    None => exact_quantile(&mut self.values, q),
                }
            }
        };
        out.push(Point {
            time: datetime(self.start),
            value,
            count: self.count,
        });
        self.count = 0;
        self.min = f64::INFINITY;
        self.max = f64::NEG_INFINITY;
        self.last_time = Micros::MIN;
        self.sum.clear();
        self.sketch = None;
        self.values.clear();
    }
}

/// The value of rank `⌊q·(n−1)⌋` among `values`: the definition DDSketch approximates.
pub(crate) fn exact_quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let rank = (q * (values.len() as f64 - 1.0)) as usize;
    let (_, v, _) = values.select_nth_unstable_by(rank, f64::total_cmp);
    *v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HOUR, MINUTE, SECOND};

    fn h(raw: Micros, minute: Micros, hour: Micros) -> PerLevel<Micros> {
        PerLevel { raw, minute, hour }
    }

    #[test]
    fn exact_functions_use_the_coarsest_level_that_fits() {
        let horizons = h(10 * HOUR, 0, 0);
        let seg = |level, from, to| Segment { level, from, to };
        assert_eq!(
            plan(Function::Mean, HOUR, 0, 24 * HOUR, &horizons),
            [seg(Level::Hour, 0, 24 * HOUR)]
        );
        assert_eq!(
            plan(Function::Mean, 5 * MINUTE, 0, 24 * HOUR, &horizons),
            [seg(Level::Minute, 0, 24 * HOUR)]
        );
        // 90 s windows: only raw points, only where they are kept.
        assert_eq!(
            plan(Function::Max, 90 * SECOND, 0, 24 * HOUR, &horizons),
            [seg(Level::Raw, align_up(10 * HOUR, 90 * SECOND), 24 * HOUR)]
        );
    }

    #[test]
    fn quantiles_prefer_raw_points_where_they_are_kept() {
        let horizons = h(23 * HOUR, 2 * HOUR, 0);
        let seg = |level, from, to| Segment { level, from, to };
        assert_eq!(
            plan(Function::P99, MINUTE, 0, 24 * HOUR, &horizons),
            [
                seg(Level::Minute, 2 * HOUR, 23 * HOUR),
                seg(Level::Raw, 23 * HOUR, 24 * HOUR)
            ]
        );
        assert_eq!(
            plan(Function::P99, HOUR, 0, 24 * HOUR, &horizons),
            [
                seg(Level::Hour, 0, 23 * HOUR),
                seg(Level::Raw, 23 * HOUR, 24 * HOUR)
            ]
        );
    }

    #[test]
    fn exact_quantile_is_the_lower_rank() {
        let mut v = vec![5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(exact_quantile(&mut v, 0.5), 3.0);
        assert_eq!(exact_quantile(&mut v, 0.99), 4.0);
        assert_eq!(exact_quantile(&mut [7.0], 0.99), 7.0);
    }

    #[test]
    fn versions_sort_by_precedence() {
        let mut v = vec!["1.10.0", "beta", "1.9.0", "0.1.0-rc.1", "0.1.0", "alpha"];
        v.sort_by(|a, b| version_order(a, b));
        assert_eq!(
            v,
            ["0.1.0-rc.1", "0.1.0", "1.9.0", "1.10.0", "alpha", "beta"]
        );
    }
}
