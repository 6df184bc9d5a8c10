//! One series' data at each level: raw points, and rollup windows, each kept in a time-ordered
//! `VecDeque` (contiguous, binary-searched, cheap to prune from the front) rather than a tree of
//! windows. Points mostly arrive in time order, so adding one is usually a look at the last
//! element; a late point is inserted in its place, after any point of the same time, so that
//! arrival order breaks ties for `last`.

use std::collections::VecDeque;

use crate::exact::ExactSum;
use crate::model::{Micros, align_down};
use crate::sketch::{LIVE_WINDOWS, Sketch};

/// A raw point: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RawPoint {
    pub time: Micros,
    pub value: f64,
}

pub(crate) const RAW_POINT_BYTES: usize = std::mem::size_of::<RawPoint>();

/// The statistics of the points of one window.
#[derive(Debug, Clone)]
pub(crate) struct Window {
    pub start: Micros,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    /// The latest point by time; among equal times, the last to arrive.
    pub last_time: Micros,
    pub last_value: f64,
    pub sum: ExactSum,
    pub sketch: Sketch,
}

impl Window {
    fn new(start: Micros, t: Micros, v: f64) -> Self {
        let mut sum = ExactSum::new();
        sum.add(v);
        Window {
            start,
            count: 1,
            min: v,
            max: v,
            last_time: t,
            last_value: v,
            sum,
            sketch: Sketch::with(v),
        }
    }

    fn add(&mut self, t: Micros, v: f64) {
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        if t >= self.last_time {
            self.last_time = t;
            self.last_value = v;
        }
        self.sum.add(v);
        self.sketch.add(v);
    }

    /// The memory estimate of this window.
    pub(crate) fn bytes(&self) -> usize {
        std::mem::size_of::<Window>() + self.sum.heap_bytes() + self.sketch.bytes()
    }
}

/// The change one addition made.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Growth {
    pub bytes: i64,
    /// Whether a window (or a raw point) was added, rather than one updated.
    pub new_item: bool,
}

/// A series' raw points, in time order.
#[derive(Debug, Default)]
pub(crate) struct Raw(pub VecDeque<RawPoint>);

impl Raw {
    pub(crate) fn add(&mut self, time: Micros, value: f64) -> Growth {
        let p = RawPoint { time, value };
        match self.0.back() {
            Some(last) if last.time > time => {
                // A late point is usually a few places from the end (executions that finished
                // out of order): look there before searching the whole period.
                let len = self.0.len();
                let floor = len.saturating_sub(32);
                let mut i = len - 1;
                while i > floor && self.0[i - 1].time > time {
                    i -= 1;
                }
                if i == floor && floor > 0 && self.0[floor - 1].time > time {
                    i = self.0.partition_point(|q| q.time <= time);
                }
                self.0.insert(i, p);
            }
            _ => self.0.push_back(p),
        }
        Growth {
            bytes: RAW_POINT_BYTES as i64,
            new_item: true,
        }
    }

    /// The points of `[from, to)`.
    pub(crate) fn range(&self, from: Micros, to: Micros) -> impl Iterator<Item = &RawPoint> {
        let a = self.0.partition_point(|p| p.time < from);
        let b = self.0.partition_point(|p| p.time < to);
        self.0.range(a..b.max(a))
    }

    /// Drops the points before `horizon`; returns how many.
    pub(crate) fn prune_before(&mut self, horizon: Micros) -> usize {
        let n = self.0.partition_point(|p| p.time < horizon);
        self.0.drain(..n);
        n
    }
}

/// A series' windows at one rollup level, in order of their start.
#[derive(Debug, Default)]
pub(crate) struct Windows(pub VecDeque<Window>);

impl Windows {
    /// Adds a point to its window of `WIDTH` (a constant, so that finding the window's start
    /// costs a multiplication, not a division).
    pub(crate) fn add<const WIDTH: Micros>(&mut self, t: Micros, v: f64) -> Growth {
        let start = align_down(t, WIDTH);
        let len = self.0.len();
        let i = match self.0.back_mut() {
            Some(last) if last.start == start => return update(last, t, v, false),
            // The common case: the point opens a window after every other. (A binary search
            // over a month of windows misses the cache at every step.)
            Some(last) if last.start < start => len,
            None => 0,
            // A late point, usually for one of the last few windows.
            Some(_) => {
                let floor = len.saturating_sub(8);
                let mut i = len - 1;
                while i > floor && self.0[i - 1].start >= start {
                    i -= 1;
                }
                if i == floor && floor > 0 && self.0[floor - 1].start >= start {
                    i = self.0.partition_point(|w| w.start < start);
                }
                i
            }
        };
        if i < len && self.0[i].start == start {
            // A late point for an older window: it stays frozen if it was.
            let refreeze = i + LIVE_WINDOWS < len;
            return update(&mut self.0[i], t, v, refreeze);
        }
        let w = Window::new(start, t, v);
        let mut bytes = w.bytes() as i64;
        if i == len {
            self.0.push_back(w);
        } else {
            self.0.insert(i, w);
        }
        // Keep every window but the newest LIVE_WINDOWS frozen: the one pushed out of the live
        // zone by this insertion, or the new window itself when it is older than the zone.
        let len = self.0.len();
        if len > LIVE_WINDOWS {
            for j in [len - 1 - LIVE_WINDOWS, i] {
                if j < len - LIVE_WINDOWS && self.0[j].sketch.is_live() {
                    let before = self.0[j].bytes() as i64;
                    self.0[j].sketch.freeze();
                    bytes += self.0[j].bytes() as i64 - before;
                }
            }
        }
        Growth {
            bytes,
            new_item: true,
        }
    }

    /// Pushes a window loaded from a snapshot, which come in order.
    pub(crate) fn push_loaded(&mut self, w: Window) -> Result<usize, &'static str> {
        if self.0.back().is_some_and(|last| last.start >= w.start) {
            return Err("windows out of order");
        }
        let bytes = w.bytes();
        self.0.push_back(w);
        Ok(bytes)
    }

    /// The windows starting in `[from, to)`.
    pub(crate) fn range(&self, from: Micros, to: Micros) -> impl Iterator<Item = &Window> {
        let a = self.0.partition_point(|w| w.start < from);
        let b = self.0.partition_point(|w| w.start < to);
        self.0.range(a..b.max(a))
    }

    /// Drops the windows starting before `horizon`; returns how many and their bytes.
    pub(crate) fn prune_before(&mut self, horizon: Micros) -> (usize, u64) {
        let n = self.0.partition_point(|w| w.start < horizon);
        let bytes = self.0.drain(..n).map(|w| w.bytes() as u64).sum();
        (n, bytes)
    }

    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.0.iter().map(|w| w.bytes() as u64).sum()
    }
}

fn update(w: &mut Window, t: Micros, v: f64, refreeze: bool) -> Growth {
    let before = w.bytes() as i64;
    w.add(t, v);
    if refreeze {
        w.sketch.freeze();
    }
    Growth {
        bytes: w.bytes() as i64 - before,
        new_item: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MINUTE;
    use crate::sketch::SMALL_VALUES;

    #[test]
    fn raw_points_keep_time_order_and_arrival_order_among_ties() {
        let mut r = Raw::default();
        for (t, v) in [(10, 1.0), (5, 2.0), (10, 3.0), (7, 4.0), (5, 5.0)] {
            r.add(t, v);
        }
        let got: Vec<_> = r.0.iter().map(|p| (p.time, p.value)).collect();
        assert_eq!(got, [(5, 2.0), (5, 5.0), (7, 4.0), (10, 1.0), (10, 3.0)]);
        assert_eq!(r.range(6, 10).count(), 1);
        // Far back (past the short look from the end) and at the very start.
        for t in (100..200).chain([6, 0]) {
            r.add(t, 0.0);
        }
        r.add(7, 9.0);
        let times: Vec<_> = r.0.iter().map(|p| p.time).collect();
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted);
        assert_eq!(
            r.0.iter().position(|p| p.value == 9.0),
            Some(5),
            "after the other 7"
        );
        assert_eq!(r.prune_before(7), 4);
    }

    #[test]
    fn only_the_newest_windows_stay_live_whatever_the_arrival_order() {
        let mut w = Windows::default();
        let mut total = 0i64;
        // Enough points per window to need a sketch (a window of fewer keeps its values).
        let points = SMALL_VALUES as i64 + 1;
        for m in [5, 0, 9, 3, 7, 1, 8, 2, 6, 4, 5, 0] {
            for k in 0..points {
                total += w
                    .add::<MINUTE>(m * MINUTE + 1 + k, m as f64 + k as f64)
                    .bytes;
            }
            let len = w.0.len();
            for (i, win) in w.0.iter().enumerate() {
                assert_eq!(
                    win.sketch.is_live(),
                    i + LIVE_WINDOWS >= len,
                    "after {m}: {i}"
                );
            }
        }
        assert_eq!(
            total as u64,
            w.bytes(),
            "the byte estimate is tracked exactly"
        );
        assert_eq!(w.0.len(), 10);
        assert_eq!(w.0[5].count, 2 * points as u64);
        total += w.add::<MINUTE>(10 * MINUTE, 1.0).bytes;
        assert!(w.0[10].sketch.values().is_some());
        assert!(!w.0[7].sketch.is_live(), "pushed out of the live zone");
        assert_eq!(total as u64, w.bytes());
        assert_eq!(w.prune_before(3 * MINUTE).0, 3);
    }

    #[test]
    fn a_late_point_finds_its_window_far_back_or_opens_one_in_place() {
        let mut w = Windows::default();
        for m in (0..40).step_by(2) {
            w.add::<MINUTE>(m * MINUTE, m as f64);
        }
        // Near the end, far back (past the short look from the end), and before the first.
        for m in [36, 37, 4, 5, -3] {
            w.add::<MINUTE>(m * MINUTE + 5, -1.0);
        }
        let starts: Vec<_> = w.0.iter().map(|x| x.start / MINUTE).collect();
        let mut sorted = starts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(starts, sorted);
        assert_eq!(starts.len(), 20 + 3);
        for m in [36, 4] {
            let x = &w.0[starts.iter().position(|&s| s == m).unwrap()];
            assert_eq!((x.count, x.min, x.max), (2, -1.0, m as f64));
        }
    }

    #[test]
    fn last_is_by_time_then_arrival() {
        let mut w = Windows::default();
        w.add::<MINUTE>(30, 1.0);
        w.add::<MINUTE>(10, 2.0);
        assert_eq!(w.0[0].last_value, 1.0);
        w.add::<MINUTE>(30, 3.0);
        assert_eq!((w.0[0].last_time, w.0[0].last_value), (30, 3.0));
    }
}
