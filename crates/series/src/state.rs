//! The store's memory: the catalog (algorithm versions and their series, interned so that a
//! point finds its series with one hash lookup of its metric name), every series' data at each
//! level, each level's horizon, and the rules that add points and prune them.
//!
//! A level's horizon is the earliest time from which it holds every point it was given: points
//! older than it are late (dropped from that level and counted), and a query only reads a level
//! from its horizon on. It moves forward with the clock (`now − age`, aligned down to the level's
//! window so that a window is kept or dropped whole) and when the byte bound prunes the oldest
//! data; it never moves back, even if the clock does.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::ops::Range;

use crate::config::Resolved;
use crate::model::{HOUR, Level, MINUTE, Micros, PerLevel, align_down};
use crate::rollup::{RAW_POINT_BYTES, Raw, Windows};

pub(crate) type VersionId = u32;
pub(crate) type SeriesId = u32;

/// The derived series of executions: one point of value 1 per payload, so `sum` and `count`
/// count executions. Under the prefix `insights.`, which the payload layer refuses for reported
/// metrics ([`insights_payload::RESERVED_PREFIX`]), so it never collides with one.
pub const EXECUTIONS: &str = "insights.executions";
/// The derived series of failures: one point per payload, 1 for a failed execution and 0 for
/// one that succeeded, so `sum` counts failures and `mean` is the failure rate.
pub const FAILURES: &str = "insights.failures";

pub(crate) struct Version {
    pub owner: Box<str>,
    pub name: Box<str>,
    pub version: Box<str>,
    /// Every series of this version by metric name, the two derived ones included.
    pub metrics: HashMap<Box<str>, SeriesId>,
    pub executions: SeriesId,
    pub failures: SeriesId,
    /// The write-ahead log generation whose file defines this version's id (0: none yet).
    pub wal_gen: u64,
    /// The metrics of the version's last payload, in their order, with their series: the next
    /// payload of a version usually reports the same metrics in the same order, so its series
    /// are found by comparing names rather than hashing them. Cleared when a series of the
    /// version is removed (its id may be reused).
    recent: Vec<(Box<str>, SeriesId)>,
}

/// How many of a payload's values [`Version::recent`] remembers (a payload from Kafka may have
/// any number; the runtime's have at most 26).
const RECENT_METRICS: usize = 32;

pub(crate) struct Series {
    pub version: VersionId,
    pub metric: Box<str>,
    /// Payload times of the first and last point stored, and how many were.
    pub first_seen: Micros,
    pub last_seen: Micros,
    pub count: u64,
    pub raw: Raw,
    pub minute: Windows,
    pub hour: Windows,
    /// As [`Version::wal_gen`].
    pub wal_gen: u64,
}

impl Series {
    fn new(version: VersionId, metric: &str) -> Self {
        Series {
            version,
            metric: metric.into(),
            first_seen: 0,
            last_seen: 0,
            count: 0,
            raw: Raw::default(),
            minute: Windows::default(),
            hour: Windows::default(),
            wal_gen: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.raw.0.is_empty() && self.minute.0.is_empty() && self.hour.0.is_empty()
    }

    fn front_time(&self, level: Level, pos: usize) -> Option<Micros> {
        match level {
            Level::Raw => self.raw.0.get(pos).map(|p| p.time),
            Level::Minute => self.minute.0.get(pos).map(|w| w.start),
            Level::Hour => self.hour.0.get(pos).map(|w| w.start),
        }
    }

    fn item_bytes(&self, level: Level, pos: usize) -> u64 {
        match level {
            Level::Raw => RAW_POINT_BYTES as u64,
            Level::Minute => self.minute.0[pos].bytes() as u64,
            Level::Hour => self.hour.0[pos].bytes() as u64,
        }
    }

    /// Drops this level's data before `horizon`: (items, bytes).
    fn prune_before(&mut self, level: Level, horizon: Micros) -> (u64, u64) {
        match level {
            Level::Raw => {
                let n = self.raw.prune_before(horizon) as u64;
                (n, n * RAW_POINT_BYTES as u64)
            }
            Level::Minute => {
                let (n, b) = self.minute.prune_before(horizon);
                (n as u64, b)
            }
            Level::Hour => {
                let (n, b) = self.hour.prune_before(horizon);
                (n as u64, b)
            }
        }
    }
}

/// Slots addressed by id; freed ids are reused (the log re-defines an id before using it in a
/// generation, so reuse is safe).
pub(crate) struct Slots<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
    live: usize,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }
}

impl<T> Slots<T> {
    pub(crate) fn get(&self, id: u32) -> Option<&T> {
        self.items.get(id as usize).and_then(Option::as_ref)
    }

    pub(crate) fn get_mut(&mut self, id: u32) -> Option<&mut T> {
        self.items.get_mut(id as usize).and_then(Option::as_mut)
    }

    fn insert(&mut self, item: T) -> u32 {
        self.live += 1;
        match self.free.pop() {
            Some(id) => {
                self.items[id as usize] = Some(item);
                id
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        }
    }

    fn remove(&mut self, id: u32) -> Option<T> {
        let item = self.items.get_mut(id as usize)?.take()?;
        self.live -= 1;
        self.free.push(id);
        Some(item)
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.items
            .iter()
            .enumerate()
            .filter_map(|(i, t)| t.as_ref().map(|t| (i as u32, t)))
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.items
            .iter_mut()
            .enumerate()
            .filter_map(|(i, t)| t.as_mut().map(|t| (i as u32, t)))
    }
}

/// A level's bookkeeping.
#[derive(Debug, Clone)]
pub(crate) struct LevelState {
    pub age_horizon: Micros,
    pub byte_horizon: Micros,
    /// The memory estimate of the level's data.
    pub bytes: u64,
    /// Raw points, or windows.
    pub items: u64,
    pub pruned_age: u64,
    pub pruned_bytes: u64,
    pub late: u64,
}

impl Default for LevelState {
    fn default() -> Self {
        LevelState {
            age_horizon: Micros::MIN,
            byte_horizon: Micros::MIN,
            bytes: 0,
            items: 0,
            pruned_age: 0,
            pruned_bytes: 0,
            late: 0,
        }
    }
}

impl LevelState {
    pub(crate) fn horizon(&self) -> Micros {
        self.age_horizon.max(self.byte_horizon)
    }
}

/// One payload with its ids resolved; its values are `values[range]` of the batch.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub version: VersionId,
    pub time: Micros,
    pub failed: bool,
    pub values: Range<usize>,
}

#[derive(Default)]
pub(crate) struct State {
    pub versions: Slots<Version>,
    pub series: Slots<Series>,
    /// (owner, name, version), length-prefixed → id: looked up without allocating.
    version_index: HashMap<Box<[u8]>, VersionId>,
    /// (owner, name) → its versions.
    algorithms: HashMap<Box<[u8]>, Vec<VersionId>>,
    key: Vec<u8>,
    pub levels: PerLevel<LevelState>,
}

fn push_key(buf: &mut Vec<u8>, parts: &[&str]) {
    buf.clear();
    for p in parts {
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(p.as_bytes());
    }
}

impl State {
    pub(crate) fn intern_version(&mut self, owner: &str, name: &str, version: &str) -> VersionId {
        push_key(&mut self.key, &[owner, name, version]);
        if let Some(&id) = self.version_index.get(self.key.as_slice()) {
            return id;
        }
        let vid = self.versions.insert(Version {
            owner: owner.into(),
            name: name.into(),
            version: version.into(),
            metrics: HashMap::new(),
            executions: 0,
            failures: 0,
            wal_gen: 0,
            recent: Vec::new(),
        });
        self.version_index.insert(self.key.as_slice().into(), vid);
        push_key(&mut self.key, &[owner, name]);
        self.algorithms
            .entry(self.key.as_slice().into())
            .or_default()
            .push(vid);
        let executions = self.intern_series(vid, EXECUTIONS);
        let failures = self.intern_series(vid, FAILURES);
        let v = self.versions.get_mut(vid).expect("just inserted");
        v.executions = executions;
        v.failures = failures;
        vid
    }

    pub(crate) fn intern_series(&mut self, vid: VersionId, metric: &str) -> SeriesId {
        let v = self
            .versions
            .get(vid)
            .expect("a version id from intern_version");
        if let Some(&sid) = v.metrics.get(metric) {
            return sid;
        }
        let sid = self.series.insert(Series::new(vid, metric));
        self.versions
            .get_mut(vid)
            .expect("checked above")
            .metrics
            .insert(metric.into(), sid);
        sid
    }

    /// The series of `metric`, the value at `pos` of a payload of `vid`: as
    /// [`State::intern_series`], looked up first where the version's last payload had it.
    pub(crate) fn intern_series_at(
        &mut self,
        vid: VersionId,
        pos: usize,
        metric: &str,
    ) -> SeriesId {
        let v = self
            .versions
            .get(vid)
            .expect("a version id from intern_version");
        if let Some((name, sid)) = v.recent.get(pos)
            && **name == *metric
        {
            return *sid;
        }
        let sid = self.intern_series(vid, metric);
        let recent = &mut self.versions.get_mut(vid).expect("checked above").recent;
        if pos < recent.len() {
            recent[pos] = (metric.into(), sid);
        } else if pos == recent.len() && pos < RECENT_METRICS {
            recent.push((metric.into(), sid));
        }
        sid
    }

    /// The versions of `owner/name`.
    pub(crate) fn algorithm(&self, owner: &str, name: &str) -> &[VersionId] {
        let mut key = Vec::with_capacity(owner.len() + name.len() + 8);
        push_key(&mut key, &[owner, name]);
        self.algorithms
            .get(key.as_slice())
            .map_or(&[], Vec::as_slice)
    }

    /// Moves the age horizons to `now` and returns every level's horizon.
    pub(crate) fn advance(&mut self, cfg: &Resolved, now: Micros) -> PerLevel<Micros> {
        let mut h = PerLevel::default();
        for level in Level::ALL {
            let lv = self.levels.get_mut(level);
            let age = align_down(now.saturating_sub(cfg.age(level)), level.width());
            lv.age_horizon = lv.age_horizon.max(age);
            *h.get_mut(level) = lv.horizon();
        }
        h
    }

    /// The horizons as they would be at `now`, without moving them (for readers).
    pub(crate) fn horizons_at(&self, cfg: &Resolved, now: Micros) -> PerLevel<Micros> {
        let mut h = PerLevel::default();
        for level in Level::ALL {
            let lv = self.levels.get(level);
            let age = align_down(now.saturating_sub(cfg.age(level)), level.width());
            *h.get_mut(level) = lv.horizon().max(age);
        }
        h
    }

    /// Adds the batch's points (and the two derived ones per payload) to every level whose
    /// horizon they are not older than. Returns the late points per level.
    pub(crate) fn apply(
        &mut self,
        entries: &[Entry],
        values: &[(SeriesId, f64)],
        h: &PerLevel<Micros>,
    ) -> PerLevel<u64> {
        let mut late = PerLevel::default();
        for e in entries {
            let v = self.versions.get(e.version).expect("resolved ids are live");
            let derived = [
                (v.executions, 1.0),
                (v.failures, f64::from(u8::from(e.failed))),
            ];
            for &(sid, value) in values[e.values.clone()].iter().chain(&derived) {
                let s = self.series.get_mut(sid).expect("resolved ids are live");
                add_point(s, &mut self.levels, h, e.time, value, &mut late);
            }
        }
        for level in Level::ALL {
            self.levels.get_mut(level).late += late.get(level);
        }
        late
    }

    /// Drops what is older than each level's horizon at `now`, then series left empty.
    pub(crate) fn prune_expired(&mut self, cfg: &Resolved, now: Micros) {
        let h = self.advance(cfg, now);
        for level in Level::ALL {
            let horizon = *h.get(level);
            let (mut items, mut bytes) = (0, 0);
            for (_, s) in self.series.iter_mut() {
                if s.front_time(level, 0).is_some_and(|t| t < horizon) {
                    let (n, b) = s.prune_before(level, horizon);
                    items += n;
                    bytes += b;
                }
            }
            let lv = self.levels.get_mut(level);
            lv.items -= items;
            lv.bytes = lv.bytes.saturating_sub(bytes);
            lv.pruned_age += items;
        }
        self.remove_empty();
    }

    /// Whether some level holds more than its byte bound.
    pub(crate) fn over_bounds(&self, cfg: &Resolved) -> bool {
        Level::ALL
            .into_iter()
            .any(|l| self.levels.get(l).bytes > *cfg.max_bytes.get(l))
    }

    /// Prunes every level past its byte bound down to 90% of it, oldest data first across all
    /// series, and moves its horizon past what was dropped.
    pub(crate) fn enforce_bounds(&mut self, cfg: &Resolved) {
        for level in Level::ALL {
            let max = *cfg.max_bytes.get(level);
            let lv = self.levels.get(level);
            if lv.bytes <= max {
                continue;
            }
            let excess = lv.bytes - max / 10 * 9;
            // A k-way walk over the series' oldest items, in time order, until enough bytes.
            let mut heap = BinaryHeap::new();
            for (sid, s) in self.series.iter() {
                if let Some(t) = s.front_time(level, 0) {
                    heap.push(Reverse((t, sid, 0usize)));
                }
            }
            let mut freed = 0;
            let mut last = None;
            while freed < excess {
                let Some(Reverse((t, sid, pos))) = heap.pop() else {
                    break;
                };
                let s = self.series.get(sid).expect("live");
                freed += s.item_bytes(level, pos);
                last = Some(t);
                if let Some(next) = s.front_time(level, pos + 1) {
                    heap.push(Reverse((next, sid, pos + 1)));
                }
            }
            let Some(last) = last else { continue };
            // Everything at `last` goes too, in every series: a level's horizon is one time.
            let cut = last.saturating_add(level.width());
            let (mut items, mut bytes) = (0, 0);
            for (_, s) in self.series.iter_mut() {
                let (n, b) = s.prune_before(level, cut);
                items += n;
                bytes += b;
            }
            let lv = self.levels.get_mut(level);
            lv.byte_horizon = lv.byte_horizon.max(cut);
            lv.items -= items;
            lv.bytes = lv.bytes.saturating_sub(bytes);
            lv.pruned_bytes += items;
        }
        self.remove_empty();
    }

    /// Forgets reported series with no data left, and versions whose every series is empty.
    fn remove_empty(&mut self) {
        let mut gone = Vec::new();
        for (vid, v) in self.versions.iter_mut() {
            let mut all_empty = true;
            let series = &mut self.series;
            let derived = [v.executions, v.failures];
            let mut removed = false;
            v.metrics.retain(|_, sid| {
                let empty = series.get(*sid).is_none_or(Series::is_empty);
                if !empty {
                    all_empty = false;
                    return true;
                }
                if derived.contains(sid) {
                    return true; // the derived series go with their version
                }
                series.remove(*sid);
                removed = true;
                false
            });
            if removed {
                v.recent.clear();
            }
            if all_empty {
                gone.push(vid);
            }
        }
        for vid in gone {
            let Some(v) = self.versions.remove(vid) else {
                continue;
            };
            for sid in v.metrics.values() {
                self.series.remove(*sid);
            }
            push_key(&mut self.key, &[&v.owner, &v.name, &v.version]);
            self.version_index.remove(self.key.as_slice());
            push_key(&mut self.key, &[&v.owner, &v.name]);
            if let Some(list) = self.algorithms.get_mut(self.key.as_slice()) {
                list.retain(|&id| id != vid);
                if list.is_empty() {
                    self.algorithms.remove(self.key.as_slice());
                }
            }
        }
    }

    /// Adds a level's loaded data to the bookkeeping (snapshot loading bypasses `add_point`).
    pub(crate) fn account_loaded(&mut self, level: Level, items: u64, bytes: u64) {
        let lv = self.levels.get_mut(level);
        lv.items += items;
        lv.bytes += bytes;
    }

    /// The memory estimate recomputed from the data, to check the tracked one in tests.
    #[cfg(test)]
    pub(crate) fn recount_bytes(&self) -> PerLevel<u64> {
        let mut b = PerLevel::default();
        for (_, s) in self.series.iter() {
            b.raw += (s.raw.0.len() * RAW_POINT_BYTES) as u64;
            b.minute += s.minute.bytes();
            b.hour += s.hour.bytes();
        }
        b
    }
}

fn add_point(
    s: &mut Series,
    levels: &mut PerLevel<LevelState>,
    h: &PerLevel<Micros>,
    t: Micros,
    v: f64,
    late: &mut PerLevel<u64>,
) {
    let mut stored = false;
    for level in Level::ALL {
        if t < *h.get(level) {
            *late.get_mut(level) += 1;
            continue;
        }
        let g = match level {
            Level::Raw => s.raw.add(t, v),
            Level::Minute => s.minute.add::<MINUTE>(t, v),
            Level::Hour => s.hour.add::<HOUR>(t, v),
        };
        let lv = levels.get_mut(level);
        lv.bytes = lv.bytes.saturating_add_signed(g.bytes);
        lv.items += u64::from(g.new_item);
        stored = true;
    }
    if stored {
        if s.count == 0 {
            s.first_seen = t;
            s.last_seen = t;
        } else {
            s.first_seen = s.first_seen.min(t);
            s.last_seen = s.last_seen.max(t);
        }
        s.count += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SeriesConfig;

    fn config(max_minute_bytes: u64) -> Resolved {
        let mut c = SeriesConfig::default();
        c.minute.max_bytes = max_minute_bytes;
        c.resolve().unwrap()
    }

    /// Adds one payload of `version` at `t` with metrics `a` and `b`.
    fn add(state: &mut State, cfg: &Resolved, now: Micros, version: &str, t: Micros) {
        let vid = state.intern_version("o", "n", version);
        let values = [
            (state.intern_series(vid, "a"), t as f64),
            (state.intern_series(vid, "b"), -1.5),
        ];
        let entry = Entry {
            version: vid,
            time: t,
            failed: t % 3 == 0,
            values: 0..2,
        };
        let h = state.advance(cfg, now);
        state.apply(&[entry], &values, &h);
    }

    #[test]
    fn the_byte_estimate_is_tracked_exactly_through_adds_and_prunes() {
        let cfg = config(256 * 1024);
        let now = 100 * 86_400 * 1_000_000;
        let mut state = State::default();
        for i in 0..5000i64 {
            // Out of order across minutes and versions, some far back.
            let t = now - ((i * 7919) % 3000) * 1_000_000 - (i % 5) * 3_600_000_000;
            add(&mut state, &cfg, now, ["1", "2", "3"][(i % 3) as usize], t);
            if i % 500 == 0 {
                state.enforce_bounds(&cfg);
            }
            let recount = state.recount_bytes();
            assert_eq!(state.levels.raw.bytes, recount.raw);
            assert_eq!(state.levels.minute.bytes, recount.minute, "after {i}");
            assert_eq!(state.levels.hour.bytes, recount.hour);
        }
        state.enforce_bounds(&cfg);
        assert!(!state.over_bounds(&cfg));
        assert!(state.levels.minute.pruned_bytes > 0);
        state.prune_expired(&cfg, now + 2 * 3_600_000_000);
        assert_eq!(state.levels.raw.bytes, 0);
        assert_eq!(state.levels.raw.items, 0);
        let recount = state.recount_bytes();
        assert_eq!(state.levels.minute.bytes, recount.minute);
        let windows: u64 = state
            .series
            .iter()
            .map(|(_, s)| s.minute.0.len() as u64)
            .sum();
        assert_eq!(state.levels.minute.items, windows);
    }

    #[test]
    fn a_payload_finds_its_series_where_the_last_one_had_them() {
        let mut state = State::default();
        let vid = state.intern_version("o", "n", "1");
        let a = state.intern_series_at(vid, 0, "a");
        let b = state.intern_series_at(vid, 1, "b");
        assert_ne!(a, b);
        assert_eq!(state.intern_series_at(vid, 0, "a"), a);
        // Another order, a new metric far along, a position past the remembered ones.
        assert_eq!(state.intern_series_at(vid, 0, "b"), b);
        assert_eq!(state.intern_series_at(vid, 1, "a"), a);
        let c = state.intern_series_at(vid, 7, "c");
        assert_eq!(state.intern_series(vid, "c"), c);
        for pos in 0..2 * RECENT_METRICS {
            assert_eq!(state.intern_series_at(vid, pos, "b"), b);
        }
        assert_eq!(state.versions.get(vid).unwrap().metrics.len(), 2 + 3);
    }

    #[test]
    fn a_removed_series_is_not_found_where_it_was_once_its_id_is_reused() {
        let cfg = config(64 << 20);
        let now = 100 * 86_400 * 1_000_000;
        let later = now + 401 * 86_400 * 1_000_000;
        let mut state = State::default();
        let v1 = state.intern_version("o", "n", "1");
        let entry = |time| Entry {
            version: v1,
            time,
            failed: false,
            values: 0..1,
        };
        let a = state.intern_series_at(v1, 0, "a");
        let h = state.advance(&cfg, now);
        state.apply(&[entry(now - 1)], &[(a, 1.0)], &h);
        let keep = state.intern_series_at(v1, 0, "keep");
        let h = state.advance(&cfg, later);
        state.apply(&[entry(later - 1)], &[(keep, 2.0)], &h);
        assert_eq!(state.intern_series_at(v1, 0, "a"), a);
        state.prune_expired(&cfg, later);
        assert!(state.series.get(a).is_none(), "a outlived every level");
        let v2 = state.intern_version("o", "n", "2");
        let reused = state.versions.get(v2).unwrap().executions;
        assert_eq!(reused, a, "the freed id is reused");
        let again = state.intern_series_at(v1, 0, "a");
        assert_ne!(again, reused);
        assert_eq!(state.series.get(again).unwrap().version, v1);
    }

    #[test]
    fn a_version_goes_when_all_its_series_are_empty_and_ids_are_reused() {
        let cfg = config(64 << 20);
        let now = 100 * 86_400 * 1_000_000;
        let mut state = State::default();
        add(&mut state, &cfg, now, "1", now - 1_000_000);
        assert_eq!((state.versions.len(), state.series.len()), (1, 4));
        state.prune_expired(&cfg, now + 500 * 86_400 * 1_000_000);
        assert_eq!((state.versions.len(), state.series.len()), (0, 0));
        assert!(state.algorithm("o", "n").is_empty());
        let later = now + 500 * 86_400 * 1_000_000;
        add(&mut state, &cfg, later, "2", later - 1);
        assert_eq!(state.algorithm("o", "n"), [0]);
        assert_eq!(state.series.len(), 4);
    }
}
