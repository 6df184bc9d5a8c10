//! The embedded series store: every Insights payload becomes points of the series
//! (owner, name, version, metric), kept raw for a recent period and rolled up into 1-minute and
//! 1-hour windows, queried per window with exact aggregates and sketch quantiles, and kept on
//! disk in a write-ahead log and checkpoints.
//!
//! # Input
//! A stream of payloads, wherever they come from: the in-process dispatcher today, a Kafka
//! consumer later. [`SeriesStore::ingest_batch`] takes each payload's exact JSON text and how
//! its execution ended ([`Incoming`]: known in-process, or read from the payload's `status` key).
//! Every numeric value becomes a point stamped with the payload's `time` (see `parse.rs` for the
//! rules); per version two derived series count executions ([`EXECUTIONS`]) and failures
//! ([`FAILURES`]), named under the prefix the payload layer refuses for reported metrics, so
//! they never collide with one. Payloads that cannot be read are refused and counted, never a
//! panic.
//!
//! # Levels
//! | level | window | kept (default) | bounded (default) |
//! |-------|--------|----------------|-------------------|
//! | raw   | each point | 1 hour     | 64 MiB            |
//! | 1m    | 1 minute   | 30 days    | 512 MiB           |
//! | 1h    | 1 hour     | 400 days   | 128 MiB           |
//!
//! Windows start at multiples of their length since the Unix epoch and keep count, exact sum,
//! min, max, last (by payload time, ties by arrival) and a DDSketch with
//! [`RELATIVE_ERROR`] (1%) (or, while a window holds at most 16 values, the values themselves,
//! which answer as a sketch of them would; see the `sketch` module). Each level's retention is
//! configured by age and bounded by an estimate of its memory ([`Retention`]); what is pruned,
//! for either reason, is counted
//! (`insights_series_pruned_total{level,reason}`), and points older than a level's retention
//! are dropped from it and counted (`insights_series_points_late_total{level}`).
//!
//! # Queries
//! [`SeriesStore::query`]: one metric of one algorithm, a [`Function`] per window of
//! [`Every`] (≥ 10 s), one series per version; windows without data are absent. `mean`, `min`,
//! `max`, `sum`, `count` and `last` are exact whichever level answers; quantiles are exact from
//! raw points and within 1% from rollups. See the `query` module for which level answers.
//! [`SeriesStore::metrics`] lists the metrics seen per version.
//!
//! # Durability
//! Each batch is one record of the write-ahead log (`<dir>/series/wal-*.log`), written with one
//! `write()` before the batch is applied: **a SIGKILL loses nothing `ingest_batch` returned
//! `Ok` for**. The log is `fdatasync`ed every `flush_interval` (1 s): a power loss or OS crash
//! loses at most that much (`insights_series_unsynced_payloads`). A checkpoint (every 5 min, or
//! when the log passes 64 MiB) writes a snapshot through a temporary file, `fsync` and rename,
//! after which the older log is deleted: disk holds one snapshot (about the size of the
//! memory), briefly a second one while it is written, and at most one log of about
//! `wal_max_bytes`. Recovery loads the snapshot and replays the log; a torn tail is cut and its
//! payloads counted (`insights_series_recovery_lost_payloads_total`).
//!
//! # Sharing
//! [`SeriesStore`] is `Send + Sync` with `&self` methods: readers share a read lock; ingest
//! and checkpoints take it for writing (see the `store` module).

mod codec;
mod config;
mod error;
mod exact;
mod ingest;
mod model;
mod params;
mod parse;
mod query;
mod rollup;
mod sketch;
mod snapshot;
mod state;
mod store;
mod telemetry;
mod wal;
mod window;

pub use config::{Clock, ManualClock, Retention, SeriesConfig};
pub use error::SeriesError;
pub use ingest::{Incoming, IngestReport, MAX_PAYLOAD_BYTES, Outcome, Refusal, Refused};
pub use model::{Level, PerLevel};
pub use params::{AlgorithmPath, Every, Function, parse_seconds};
pub use query::{Point, Query, QueryResult, Source, VersionSeries};
pub use sketch::RELATIVE_ERROR;
pub use state::{EXECUTIONS, FAILURES};
pub use store::{LevelStats, MetricInfo, RecoveryReport, SeriesStore, StoreStats, VersionMetrics};
pub use window::{RangeAggregate, VersionAggregate};

#[cfg(test)]
mod tests {
    #[test]
    fn derived_series_are_under_the_prefix_the_payload_layer_reserves() {
        for name in [super::EXECUTIONS, super::FAILURES] {
            assert!(
                name.starts_with(insights_payload::RESERVED_PREFIX),
                "{name}"
            );
        }
    }
}
