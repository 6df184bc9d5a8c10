//! How long and how much the store keeps, how often it makes its data durable, and the clock it
//! measures retention against (the system clock, or a [`ManualClock`] in tests).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

use crate::SeriesError;
use crate::model::{self, Level, Micros, PerLevel};

/// What one level keeps: points (or windows) younger than `age`, within `max_bytes`.
///
/// Bytes are an estimate of the memory held (see [`SeriesStore::stats`](crate::SeriesStore::stats)):
/// 16 bytes per raw point; per window the window itself (about 100 bytes, its first three
/// exact-sum partials included), any further partials, and its sketch: nothing more for a
/// window of one value, 8 bytes per value for a window of at most 16, else about 1 KiB while
/// live (for the newest three windows of a series) and its compact encoding, typically 50 to
/// 400 bytes, once frozen. Past `max_bytes` the oldest
/// data of the level (across all series) is pruned down to 90% of the bound, so that pruning
/// does not run on every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub age: Duration,
    pub max_bytes: u64,
}

/// The store's settings. [`SeriesConfig::default`] keeps raw points for 1 hour (64 MiB),
/// 1-minute windows for 30 days (512 MiB) and 1-hour windows for 400 days (128 MiB).
#[derive(Debug, Clone)]
pub struct SeriesConfig {
    /// Raw points.
    pub raw: Retention,
    /// 1-minute windows. Must keep at least as long as one minute.
    pub minute: Retention,
    /// 1-hour windows. Must keep at least as long as one hour.
    pub hour: Retention,
    /// Payloads whose `time` is further ahead of the clock than this are refused (a producer's
    /// clock gone wrong would otherwise hold windows no retention ever reaches).
    pub max_future: Duration,
    /// How often the write-ahead log is `fdatasync`ed. A SIGKILL loses nothing that was
    /// ingested (every batch is written to the OS before `ingest_batch` returns); a power loss
    /// or an OS crash loses at most this much.
    pub flush_interval: Duration,
    /// How often a checkpoint (a snapshot, after which the write-ahead log starts empty) is
    /// written.
    pub checkpoint_interval: Duration,
    /// A checkpoint is also written as soon as the write-ahead log grows past this: the bound
    /// on its size, and on the time a restart spends replaying it.
    pub wal_max_bytes: u64,
    /// What "now" is for retention and for refusing future payloads.
    pub clock: Clock,
}

impl Default for SeriesConfig {
    fn default() -> Self {
        const MIB: u64 = 1 << 20;
        Self {
            raw: Retention {
                age: Duration::from_secs(3600),
                max_bytes: 64 * MIB,
            },
            minute: Retention {
                age: Duration::from_secs(30 * 86_400),
                max_bytes: 512 * MIB,
            },
            hour: Retention {
                age: Duration::from_secs(400 * 86_400),
                max_bytes: 128 * MIB,
            },
            max_future: Duration::from_secs(600),
            flush_interval: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(300),
            wal_max_bytes: 64 * MIB,
            clock: Clock::system(),
        }
    }
}

/// [`SeriesConfig`] checked, in the units the store works in.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub age: PerLevel<Micros>,
    pub max_bytes: PerLevel<u64>,
    pub max_future: Micros,
    pub flush_interval: Duration,
    pub checkpoint_interval: Duration,
    pub wal_max_bytes: u64,
    pub clock: Clock,
}

fn micros_of(field: &'static str, d: Duration, min: Duration) -> Result<Micros, SeriesError> {
    if d < min {
        return Err(SeriesError::Config {
            field,
            problem: format!("must be at least {min:?}, not {d:?}"),
        });
    }
    i64::try_from(d.as_micros())
        .ok()
        .filter(|us| *us <= 100 * 366 * 86_400 * model::SECOND)
        .ok_or_else(|| SeriesError::Config {
            field,
            problem: format!("must be at most 100 years, not {d:?}"),
        })
}

fn bytes_of(field: &'static str, b: u64) -> Result<u64, SeriesError> {
    if b < 4096 {
        return Err(SeriesError::Config {
            field,
            problem: format!("must be at least 4096 bytes, not {b}"),
        });
    }
    Ok(b)
}

impl SeriesConfig {
    pub(crate) fn resolve(&self) -> Result<Resolved, SeriesError> {
        let s = Duration::from_secs;
        Ok(Resolved {
            age: PerLevel {
                raw: micros_of("raw.age", self.raw.age, s(1))?,
                minute: micros_of("minute.age", self.minute.age, s(60))?,
                hour: micros_of("hour.age", self.hour.age, s(3600))?,
            },
            max_bytes: PerLevel {
                raw: bytes_of("raw.max_bytes", self.raw.max_bytes)?,
                minute: bytes_of("minute.max_bytes", self.minute.max_bytes)?,
                hour: bytes_of("hour.max_bytes", self.hour.max_bytes)?,
            },
            max_future: micros_of("max_future", self.max_future, s(0))?,
            flush_interval: nonzero("flush_interval", self.flush_interval)?,
            checkpoint_interval: nonzero("checkpoint_interval", self.checkpoint_interval)?,
            wal_max_bytes: bytes_of("wal_max_bytes", self.wal_max_bytes)?,
            clock: self.clock.clone(),
        })
    }
}

fn nonzero(field: &'static str, d: Duration) -> Result<Duration, SeriesError> {
    if d.is_zero() {
        return Err(SeriesError::Config {
            field,
            problem: "must be longer than zero".into(),
        });
    }
    Ok(d)
}

impl Resolved {
    pub(crate) fn age(&self, level: Level) -> Micros {
        *self.age.get(level)
    }
}

/// The store's notion of now.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Self {
        Clock(None)
    }

    pub fn now(&self) -> OffsetDateTime {
        model::datetime(self.now_micros())
    }

    pub(crate) fn now_micros(&self) -> Micros {
        match &self.0 {
            None => model::micros(OffsetDateTime::now_utc()),
            Some(t) => t.load(Ordering::Relaxed),
        }
    }
}

/// A clock that moves only when told to, for tests (here and in the crates built on this one).
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now: OffsetDateTime) -> Self {
        ManualClock(Arc::new(AtomicI64::new(model::micros(now))))
    }

    pub fn set(&self, now: OffsetDateTime) {
        self.0.store(model::micros(now), Ordering::Relaxed);
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_micros() as i64, Ordering::Relaxed);
    }

    pub fn now(&self) -> OffsetDateTime {
        model::datetime(self.0.load(Ordering::Relaxed))
    }
}

impl From<ManualClock> for Clock {
    fn from(m: ManualClock) -> Self {
        Clock(Some(m.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_and_bad_fields_are_named() {
        SeriesConfig::default().resolve().unwrap();
        let mut c = SeriesConfig::default();
        c.minute.age = Duration::from_secs(30);
        assert_eq!(
            c.resolve().unwrap_err().to_string(),
            "series configuration: `minute.age` must be at least 60s, not 30s"
        );
        let mut c = SeriesConfig::default();
        c.raw.max_bytes = 10;
        assert!(
            c.resolve()
                .unwrap_err()
                .to_string()
                .contains("`raw.max_bytes`")
        );
    }
}
