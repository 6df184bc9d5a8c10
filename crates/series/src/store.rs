//! [`SeriesStore`]: opening (and recovering) the store, ingest, queries, flush, checkpoints, and
//! the maintenance thread that runs them on schedule.
//!
//! Locking: one `RwLock` over the memory and the open log. Ingest parses its batch before taking
//! it, then holds it for writing while it resolves ids, writes the log record and applies the
//! points, so the log's order is the order of application. Queries and listings hold it for
//! reading, concurrently with each other. A checkpoint holds it for writing while it serializes
//! the memory into the snapshot file (the page cache, not the disk: the `fsync` happens after),
//! which pauses ingest for that long (about a second per gigabyte).

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::codec::Malformed;
use crate::config::{Resolved, SeriesConfig};
use crate::ingest::{Incoming, IngestReport, MAX_PAYLOAD_BYTES, Refusal, Refused};
use crate::model::{self, Level, Micros, PerLevel, SECOND};
use crate::params::AlgorithmPath;
use crate::parse::{self, Scratch};
use crate::query::{self, Query, QueryResult};
use crate::state::{Entry, State};
use crate::telemetry::{self, Published};
use crate::wal::{self, Wal};
use crate::{SeriesError, snapshot};

const SNAPSHOT: &str = "snapshot";
/// At most this many payloads of at most [`MAX_PAYLOAD_BYTES`] each in one log record: about
/// 1 GiB at worst, within the `u32` of its length.
const RECORD_PAYLOADS: usize = 1024;
const SNAPSHOT_TMP: &str = "snapshot.tmp";

/// The embedded series store. `Send + Sync`: share it behind an `Arc`; every method takes
/// `&self`.
pub struct SeriesStore {
    inner: Arc<Inner>,
    maintenance: Option<std::thread::JoinHandle<()>>,
}

struct Inner {
    dir: PathBuf,
    cfg: Resolved,
    core: RwLock<Core>,
    /// Held for a whole checkpoint, so that two never interleave their files.
    checkpointing: Mutex<()>,
    unsynced: AtomicU64,
    signal: Mutex<Signal>,
    wake: Condvar,
    recovery: RecoveryReport,
    /// Locked for the life of the store: one store per directory.
    _lock: File,
}

struct Core {
    state: State,
    wal: Wal,
    last_prune: Micros,
    published: Published,
}

#[derive(Default)]
struct Signal {
    stop: bool,
    checkpoint_wanted: bool,
}

/// What opening the store recovered, and what it could not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub snapshot_loaded: bool,
    /// A snapshot that could not be read was renamed to this path (and the log replayed alone).
    pub snapshot_set_aside: Option<PathBuf>,
    pub replayed_payloads: u64,
    /// Payloads of the log record cut at recovery, when its header was intact.
    pub lost_payloads: u64,
    pub lost_bytes: u64,
    /// The cut was damage (a checksum failed), not an interrupted write.
    pub damaged: bool,
}

/// One level's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelStats {
    /// The memory estimate the level's byte bound applies to.
    pub bytes: u64,
    /// Raw points, or windows.
    pub entries: u64,
    /// From here on the level holds every point it was given.
    pub horizon: OffsetDateTime,
    /// Entries pruned for their age, and for the byte bound, since the store was opened.
    pub pruned_age: u64,
    pub pruned_bytes: u64,
    /// Points dropped from this level as older than its horizon, since the store was opened.
    pub late_points: u64,
}

/// The store's figures, as `/metrics` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreStats {
    pub levels: PerLevel<LevelStats>,
    pub versions: usize,
    pub series: usize,
    /// Bytes in the log since the last checkpoint.
    pub wal_bytes: u64,
    /// Payloads written to the log since the last `fdatasync`.
    pub unsynced_payloads: u64,
    pub recovery: RecoveryReport,
}

/// One metric of one version, as seen so far.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricInfo {
    pub metric: String,
    /// The payload times of the first and the last point stored.
    pub first_seen: OffsetDateTime,
    pub last_seen: OffsetDateTime,
    /// Points stored (in any level) since the series appeared.
    pub count: u64,
}

/// The metrics of one version, by name.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionMetrics {
    pub version: String,
    pub metrics: Vec<MetricInfo>,
}

impl SeriesStore {
    /// Opens the store in `<dir>/series/` (created `0700` if needed), recovering what a
    /// previous process left: the snapshot, then the write-ahead log after it. A torn log tail
    /// is cut and counted ([`RecoveryReport`]); a snapshot that cannot be read is renamed aside
    /// (logged and counted) and the log replayed without it. When anything was replayed, a
    /// checkpoint is written before this returns, so the next start replays nothing twice.
    pub fn open(dir: impl AsRef<Path>, config: SeriesConfig) -> Result<SeriesStore, SeriesError> {
        let cfg = config.resolve()?;
        telemetry::describe();
        let dir = dir.as_ref().join("series");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(SeriesError::io("creating", &dir))?;
        let lock = lock(&dir)?;
        let _ = std::fs::remove_file(dir.join(SNAPSHOT_TMP));

        let now = cfg.clock.now_micros();
        let mut state = State::default();
        let mut recovery = RecoveryReport::default();
        let snapshot_path = dir.join(SNAPSHOT);
        let mut first_generation = 0;
        match std::fs::read(&snapshot_path) {
            Ok(bytes) => match snapshot::read(&bytes, &mut state) {
                Ok(next) => {
                    first_generation = next;
                    recovery.snapshot_loaded = true;
                }
                Err(Malformed(why)) => {
                    state = State::default();
                    let aside = dir.join(format!("snapshot.unreadable-{}", now / SECOND));
                    std::fs::rename(&snapshot_path, &aside)
                        .map_err(SeriesError::io("setting aside", &snapshot_path))?;
                    tracing::error!(
                        path = %aside.display(), reason = why,
                        "the series snapshot cannot be read; it was set aside and the write-ahead log replayed without it: series data from before the last checkpoint is missing"
                    );
                    metrics::counter!("insights_series_snapshot_set_aside_total").increment(1);
                    recovery.snapshot_set_aside = Some(aside);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(SeriesError::io("reading", &snapshot_path)(e)),
        }

        let mut wal_bytes = 0u64;
        let mut last_generation = None;
        for (generation, path) in wal::list(&dir)? {
            if generation < first_generation {
                // Covered by the snapshot; a crash came between the two steps of a checkpoint.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            last_generation = Some(generation);
            let bytes = std::fs::read(&path).map_err(SeriesError::io("reading", &path))?;
            wal_bytes += bytes.len() as u64;
            let r = wal::replay(&bytes, &mut state, |st, d| {
                let h = st.advance(&cfg, now);
                st.apply(&d.entries, &d.values, &h);
            });
            recovery.replayed_payloads += r.payloads;
            if r.lost_bytes > 0 {
                recovery.lost_bytes += r.lost_bytes;
                recovery.lost_payloads += r.lost_payloads;
                recovery.damaged |= r.corrupt;
                let what = if r.corrupt {
                    "a damaged record (checksum mismatch)"
                } else {
                    "a record cut short (the process stopped while writing it)"
                };
                tracing::warn!(
                    path = %path.display(), at = r.good_len, lost_bytes = r.lost_bytes,
                    lost_payloads = r.lost_payloads,
                    "series write-ahead log ends with {what}; it was cut there"
                );
            }
        }
        metrics::counter!("insights_series_recovery_replayed_payloads_total")
            .increment(recovery.replayed_payloads);
        metrics::counter!("insights_series_recovery_lost_payloads_total")
            .increment(recovery.lost_payloads);
        metrics::counter!("insights_series_recovery_lost_bytes_total")
            .increment(recovery.lost_bytes);
        state.prune_expired(&cfg, now);
        state.enforce_bounds(&cfg);

        let generation = if recovery.snapshot_loaded && wal_bytes == 0 {
            first_generation
        } else {
            let generation = first_generation
                .max(1)
                .max(last_generation.map_or(0, |g| g + 1));
            let (file, _) = snapshot::write(&dir.join(SNAPSHOT_TMP), &state, generation)
                .map_err(SeriesError::io("writing", dir.join(SNAPSHOT_TMP)))?;
            install_snapshot(&dir, file)?;
            delete_logs_before(&dir, generation);
            generation
        };
        let wal = Wal::open(&dir, generation)?;
        let mut published = Published::default();
        telemetry::publish(&state, &mut published, wal.len);

        let inner = Arc::new(Inner {
            dir,
            core: RwLock::new(Core {
                state,
                wal,
                last_prune: now,
                published,
            }),
            checkpointing: Mutex::new(()),
            unsynced: AtomicU64::new(0),
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
            recovery,
            _lock: lock,
            cfg,
        });
        let maintenance = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("series-maintenance".into())
                .spawn(move || maintain(&inner))
                .map_err(SeriesError::io(
                    "starting the maintenance thread for",
                    PathBuf::new(),
                ))?
        };
        Ok(SeriesStore {
            inner,
            maintenance: Some(maintenance),
        })
    }

    /// Ingests one payload. A refused payload is an `Err(SeriesError::Refused)` (and counted);
    /// see [`SeriesStore::ingest_batch`].
    pub fn ingest(&self, json: &str, failed: bool) -> Result<IngestReport, SeriesError> {
        let mut report = self.ingest_batch(&[Incoming::new(json, failed)])?;
        match report.refused.pop() {
            Some(r) => Err(SeriesError::Refused(r.reason)),
            None => Ok(report),
        }
    }

    /// Ingests a batch: every payload that can be read is written to the log in one record
    /// (one `write()`) and then applied; those that cannot are refused, listed in the report and
    /// counted, and the others are taken regardless. An `Err` means the log could not be
    /// written: nothing of the batch was stored. (A batch of more than 1024 payloads, which the
    /// dispatcher never hands over, is written as one record per 1024; an `Err` then leaves the
    /// records before the failed one stored.)
    pub fn ingest_batch(&self, batch: &[Incoming<'_>]) -> Result<IngestReport, SeriesError> {
        let cfg = &self.inner.cfg;
        let now = cfg.clock.now_micros();
        let latest = now.saturating_add(cfg.max_future);
        let mut report = IngestReport::default();
        let mut scratch = Scratch::default();
        let mut parsed = Vec::with_capacity(batch.len());
        for (index, incoming) in batch.iter().enumerate() {
            if incoming.json.len() > MAX_PAYLOAD_BYTES {
                let reason = Refusal::TooLarge(incoming.json.len());
                report.refused.push(Refused { index, reason });
                continue;
            }
            let skipped_before = scratch.skipped;
            match parse::parse(incoming.json, incoming.outcome, &mut scratch) {
                Ok(p) if p.time > latest => {
                    scratch.values.truncate(p.values.start);
                    scratch.skipped = skipped_before;
                    let reason = Refusal::InFuture(payload_time(p.time));
                    report.refused.push(Refused { index, reason });
                }
                Ok(p) => parsed.push(p),
                Err(reason) => report.refused.push(Refused { index, reason }),
            }
        }
        report.skipped_values = scratch.skipped;
        if parsed.is_empty() {
            telemetry::ingested(&report);
            return Ok(report);
        }

        let wal_len = {
            let mut guard = self.inner.write();
            let core = &mut *guard;
            let state = &mut core.state;
            let mut entries = Vec::with_capacity(parsed.len());
            let mut values = Vec::with_capacity(scratch.values.len());
            let mut last: Option<(usize, u32)> = None;
            for (i, p) in parsed.iter().enumerate() {
                // Consecutive payloads of one version are the common case: skip the lookup.
                let vid = match last {
                    Some((j, vid))
                        if parsed[j].version == p.version
                            && parsed[j].name == p.name
                            && parsed[j].owner == p.owner =>
                    {
                        vid
                    }
                    _ => state.intern_version(&p.owner, &p.name, &p.version),
                };
                last = Some((i, vid));
                let start = values.len();
                for (pos, (metric, v)) in scratch.values[p.values.clone()].iter().enumerate() {
                    values.push((state.intern_series_at(vid, pos, metric), *v));
                }
                entries.push(Entry {
                    version: vid,
                    time: p.time,
                    failed: p.failed,
                    values: start..values.len(),
                });
            }
            // One record per batch; a batch of more than RECORD_PAYLOADS payloads (never one
            // from the dispatcher) is several, so that a record's length always fits its u32.
            let h = state.advance(cfg, now);
            for chunk in entries.chunks(RECORD_PAYLOADS) {
                if let Err(e) = core.wal.append(state, chunk, &values) {
                    telemetry::wal_error("write");
                    tracing::error!(error = %e, payloads = chunk.len(), "series store: a batch could not be logged and was not stored");
                    return Err(e);
                }
                let late = state.apply(chunk, &values, &h);
                for level in Level::ALL {
                    *report.late_points.get_mut(level) += late.get(level);
                }
                report.accepted += chunk.len();
                report.values += chunk.iter().map(|e| e.values.len()).sum::<usize>();
            }
            let mut changed = false;
            if now - core.last_prune >= SECOND {
                state.prune_expired(cfg, now);
                core.last_prune = now;
                changed = true;
            }
            if state.over_bounds(cfg) {
                state.enforce_bounds(cfg);
                changed = true;
            }
            if changed {
                telemetry::publish(state, &mut core.published, core.wal.len);
            }
            core.wal.len
        };
        let unsynced = self
            .inner
            .unsynced
            .fetch_add(report.accepted as u64, Ordering::Relaxed);
        telemetry::unsynced(unsynced + report.accepted as u64);
        telemetry::ingested(&report);
        if wal_len > cfg.wal_max_bytes {
            let mut s = self.inner.signal();
            s.checkpoint_wanted = true;
            self.inner.wake.notify_all();
        }
        Ok(report)
    }

    /// Aggregates one metric per window of `q.every`; see [`Query`] and the `query` module
    /// documentation for which level answers and how exact it is.
    pub fn query(&self, q: &Query) -> Result<QueryResult, SeriesError> {
        if q.from >= q.to {
            return Err(SeriesError::EmptyRange {
                from: q.from.to_string(),
                to: q.to.to_string(),
            });
        }
        let now = self.inner.cfg.clock.now_micros();
        let core = self.inner.read();
        let horizons = core.state.horizons_at(&self.inner.cfg, now);
        Ok(query::run(&core.state, q, &horizons))
    }

    /// The metrics seen per version of `algorithm`, with their first and last payload time
    /// and point count; versions in version order, metrics by name. Only series that still
    /// hold data are listed.
    pub fn metrics(&self, algorithm: &AlgorithmPath) -> Vec<VersionMetrics> {
        let core = self.inner.read();
        let state = &core.state;
        let mut out = Vec::new();
        for &vid in state.algorithm(&algorithm.owner, &algorithm.name) {
            let v = state.versions.get(vid).expect("indexed versions are live");
            let mut metrics: Vec<MetricInfo> = v
                .metrics
                .values()
                .filter_map(|&sid| state.series.get(sid))
                .filter(|s| s.count > 0)
                .map(|s| MetricInfo {
                    metric: s.metric.to_string(),
                    first_seen: model::datetime(s.first_seen),
                    last_seen: model::datetime(s.last_seen),
                    count: s.count,
                })
                .collect();
            if metrics.is_empty() {
                continue;
            }
            metrics.sort_by(|a, b| a.metric.cmp(&b.metric));
            out.push(VersionMetrics {
                version: v.version.to_string(),
                metrics,
            });
        }
        out.sort_by(|a, b| query::version_order(&a.version, &b.version));
        out
    }

    /// Runs `f` over the state as of now and the horizon of each level: the read side that
    /// queries other than [`SeriesStore::query`] (the range aggregate) are built on.
    pub(crate) fn with_state<R>(
        &self,
        f: impl FnOnce(&crate::state::State, &crate::model::PerLevel<crate::model::Micros>) -> R,
    ) -> R {
        let now = self.inner.cfg.clock.now_micros();
        let core = self.inner.read();
        let horizons = core.state.horizons_at(&self.inner.cfg, now);
        f(&core.state, &horizons)
    }

    pub fn stats(&self) -> StoreStats {
        let core = self.inner.read();
        let state = &core.state;
        let level = |l: Level| {
            let lv = state.levels.get(l);
            LevelStats {
                bytes: lv.bytes,
                entries: lv.items,
                horizon: model::datetime(lv.horizon()),
                pruned_age: lv.pruned_age,
                pruned_bytes: lv.pruned_bytes,
                late_points: lv.late,
            }
        };
        StoreStats {
            levels: PerLevel {
                raw: level(Level::Raw),
                minute: level(Level::Minute),
                hour: level(Level::Hour),
            },
            versions: state.versions.len(),
            series: state.series.len(),
            wal_bytes: core.wal.len,
            unsynced_payloads: self.inner.unsynced.load(Ordering::Relaxed),
            recovery: self.inner.recovery.clone(),
        }
    }

    /// `fdatasync`s the log: after this, a power loss loses nothing ingested before it. (A
    /// SIGKILL loses nothing ingested even without it.) The maintenance thread does this every
    /// `flush_interval`.
    pub fn flush(&self) -> Result<(), SeriesError> {
        self.inner.flush()
    }

    /// Writes a snapshot and starts an empty log; see the `snapshot` module. The maintenance
    /// thread does this every `checkpoint_interval`, and when the log passes `wal_max_bytes`.
    pub fn checkpoint(&self) -> Result<(), SeriesError> {
        self.inner.checkpoint()
    }

    /// Drops what has outlived its retention now (the maintenance thread does this every
    /// second; ingest too, at most once a second).
    pub fn prune(&self) {
        self.inner.prune();
    }

    /// Checkpoints and stops: the next open replays nothing.
    pub fn close(self) -> Result<(), SeriesError> {
        self.inner.checkpoint()
    }
}

impl Drop for SeriesStore {
    /// Stops the maintenance thread. Nothing is flushed or checkpointed: what was ingested is
    /// already in the log, as after a SIGKILL.
    fn drop(&mut self) {
        self.inner.signal().stop = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.maintenance.take() {
            let _ = t.join();
        }
    }
}

impl Inner {
    fn read(&self) -> RwLockReadGuard<'_, Core> {
        // A panic while holding the lock leaves data that is still memory-safe to read; a
        // monitoring store keeps serving rather than failing every later call.
        self.core.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Core> {
        self.core.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn signal(&self) -> std::sync::MutexGuard<'_, Signal> {
        self.signal.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn flush(&self) -> Result<(), SeriesError> {
        let (file, path) = {
            let core = self.read();
            (core.wal.file(), core.wal.path.clone())
        };
        let n = self.unsynced.swap(0, Ordering::Relaxed);
        if let Err(e) = file.sync_data() {
            self.unsynced.fetch_add(n, Ordering::Relaxed);
            telemetry::wal_error("sync");
            return Err(SeriesError::io("syncing", path)(e));
        }
        telemetry::unsynced(self.unsynced.load(Ordering::Relaxed));
        Ok(())
    }

    fn prune(&self) {
        let now = self.cfg.clock.now_micros();
        let mut guard = self.write();
        let core = &mut *guard;
        core.state.prune_expired(&self.cfg, now);
        core.last_prune = now;
        telemetry::publish(&core.state, &mut core.published, core.wal.len);
    }

    fn checkpoint(&self) -> Result<(), SeriesError> {
        let _one = self
            .checkpointing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = self.checkpoint_once();
        telemetry::checkpoint(result.is_ok());
        result
    }

    fn checkpoint_once(&self) -> Result<(), SeriesError> {
        let started = Instant::now();
        let tmp = self.dir.join(SNAPSHOT_TMP);
        let (file, bytes, old_generation) = {
            let mut guard = self.write();
            let core = &mut *guard;
            let next = core.wal.generation + 1;
            let (file, bytes) = snapshot::write(&tmp, &core.state, next)
                .map_err(SeriesError::io("writing", &tmp))?;
            let wal = Wal::open(&self.dir, next)?;
            let old = std::mem::replace(&mut core.wal, wal);
            telemetry::publish(&core.state, &mut core.published, core.wal.len);
            (file, bytes, old.generation)
        };
        let paused = started.elapsed();
        install_snapshot(&self.dir, file)?;
        // The snapshot is durable: the payloads of the old log are safe whatever happens now.
        self.unsynced.store(0, Ordering::Relaxed);
        delete_logs_before(&self.dir, old_generation + 1);
        tracing::debug!(
            bytes,
            paused_ms = paused.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "series checkpoint written"
        );
        Ok(())
    }
}

/// `fsync`s the written snapshot, renames it into place, and `fsync`s the directory.
fn install_snapshot(dir: &Path, tmp_file: File) -> Result<(), SeriesError> {
    let tmp = dir.join(SNAPSHOT_TMP);
    tmp_file
        .sync_all()
        .map_err(SeriesError::io("syncing", &tmp))?;
    drop(tmp_file);
    let path = dir.join(SNAPSHOT);
    std::fs::rename(&tmp, &path).map_err(SeriesError::io("renaming into place", &path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(SeriesError::io("syncing", dir))
}

fn delete_logs_before(dir: &Path, generation: u64) {
    let Ok(files) = wal::list(dir) else { return };
    for (g, path) in files {
        if g < generation
            && let Err(e) = std::fs::remove_file(&path)
        {
            tracing::warn!(path = %path.display(), error = %e, "an old series log could not be deleted; it will be next time");
        }
    }
}

fn lock(dir: &Path) -> Result<File, SeriesError> {
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(SeriesError::io("creating", &path))?;
    // A process that forks (a worker being started, by this process or a test beside it)
    // holds a copy of every descriptor, the lock's included, until its child calls exec; a
    // store reopened at that instant would find its own directory locked. So the lock is
    // tried for up to two seconds before the directory is taken to be another store's.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(SeriesError::Locked {
                    path: dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(SeriesError::io("locking", &path)(e));
            }
        }
    }
}

fn payload_time(t: Micros) -> String {
    insights_payload::format_time(model::datetime(t))
}

/// The maintenance thread: flushes, prunes and checkpoints on schedule, until the store drops.
fn maintain(inner: &Inner) {
    let cfg = &inner.cfg;
    let tick = cfg.flush_interval.min(Duration::from_secs(1));
    let mut last_flush = Instant::now();
    let mut last_prune = Instant::now();
    let mut last_checkpoint = Instant::now();
    let mut retry_at: Option<Instant> = None;
    loop {
        let wanted = {
            let guard = inner.signal();
            let (mut s, _) = inner
                .wake
                .wait_timeout_while(guard, tick, |s| !s.stop && !s.checkpoint_wanted)
                .unwrap_or_else(PoisonError::into_inner);
            if s.stop {
                return;
            }
            std::mem::take(&mut s.checkpoint_wanted)
        };
        if last_flush.elapsed() >= cfg.flush_interval {
            if let Err(e) = inner.flush() {
                tracing::error!(error = %e, "series store: the log could not be synced; a power loss could lose what was ingested since the last sync");
            }
            last_flush = Instant::now();
        }
        if last_prune.elapsed() >= Duration::from_secs(1) {
            inner.prune();
            last_prune = Instant::now();
        }
        let due = wanted || last_checkpoint.elapsed() >= cfg.checkpoint_interval;
        if due && retry_at.is_none_or(|t| Instant::now() >= t) {
            match inner.checkpoint() {
                Ok(()) => retry_at = None,
                Err(e) => {
                    tracing::error!(error = %e, "series store: checkpoint failed; the log keeps growing until one succeeds (retried in 10 s)");
                    retry_at = Some(Instant::now() + Duration::from_secs(10));
                }
            }
            last_checkpoint = Instant::now();
        }
    }
}
