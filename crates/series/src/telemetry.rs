//! The store's `/metrics`, through the `metrics` facade (whatever recorder the process
//! installed). Labels are bounded: a level (`raw`, `1m`, `1h`), a reason, an operation; never an
//! algorithm or a request.

use metrics::{counter, describe_counter, describe_gauge, gauge};

use crate::ingest::IngestReport;
use crate::model::{Level, PerLevel};
use crate::state::State;

pub(crate) fn describe() {
    describe_counter!(
        "insights_series_payloads_ingested_total",
        "Payloads taken by the series store."
    );
    describe_counter!(
        "insights_series_payloads_refused_total",
        "Payloads the series store refused, by reason; nothing of them was stored."
    );
    describe_counter!(
        "insights_series_values_total",
        "Numeric values taken from payloads (duration included)."
    );
    describe_counter!(
        "insights_series_values_skipped_total",
        "Payload values ignored: not numbers, or keys that cannot be metrics."
    );
    describe_counter!(
        "insights_series_points_late_total",
        "Points older than a level's retention, not stored in that level."
    );
    describe_counter!(
        "insights_series_pruned_total",
        "Raw points (level raw) or windows (1m, 1h) pruned, by reason: age or bytes."
    );
    describe_gauge!(
        "insights_series_bytes",
        "Estimated memory held per level (the figure the byte bound applies to)."
    );
    describe_gauge!(
        "insights_series_entries",
        "Raw points (level raw) or windows (1m, 1h) held."
    );
    describe_gauge!("insights_series_series", "Series held.");
    describe_gauge!(
        "insights_series_wal_bytes",
        "Bytes in the write-ahead log since the last checkpoint."
    );
    describe_gauge!(
        "insights_series_unsynced_payloads",
        "Payloads written to the log but not yet fsynced: what a power loss could take."
    );
    describe_counter!(
        "insights_series_recovery_replayed_payloads_total",
        "Payloads replayed from the write-ahead log at start."
    );
    describe_counter!(
        "insights_series_recovery_lost_payloads_total",
        "Payloads of a torn or damaged log record cut at recovery."
    );
    describe_counter!(
        "insights_series_recovery_lost_bytes_total",
        "Bytes of the write-ahead log cut at recovery."
    );
    describe_counter!(
        "insights_series_snapshot_set_aside_total",
        "Snapshots that could not be read at start and were renamed aside."
    );
    describe_counter!(
        "insights_series_checkpoints_total",
        "Checkpoints written, by result."
    );
    describe_counter!(
        "insights_series_wal_errors_total",
        "Write-ahead log operations that failed, by operation."
    );
}

pub(crate) fn ingested(report: &IngestReport) {
    if report.accepted > 0 {
        counter!("insights_series_payloads_ingested_total").increment(report.accepted as u64);
        counter!("insights_series_values_total").increment(report.values as u64);
    }
    if report.skipped_values > 0 {
        counter!("insights_series_values_skipped_total").increment(report.skipped_values as u64);
    }
    for r in &report.refused {
        counter!("insights_series_payloads_refused_total", "reason" => r.reason.label())
            .increment(1);
    }
    for level in Level::ALL {
        let late = *report.late_points.get(level);
        if late > 0 {
            counter!("insights_series_points_late_total", "level" => level.label()).increment(late);
        }
    }
}

/// The cumulative prune counts already published, so that each publication adds the difference.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Published {
    pruned_age: PerLevel<u64>,
    pruned_bytes: PerLevel<u64>,
}

pub(crate) fn publish(state: &State, published: &mut Published, wal_bytes: u64) {
    for level in Level::ALL {
        let lv = state.levels.get(level);
        let label = level.label();
        for (reason, now, before) in [
            ("age", lv.pruned_age, published.pruned_age.get_mut(level)),
            (
                "bytes",
                lv.pruned_bytes,
                published.pruned_bytes.get_mut(level),
            ),
        ] {
            if now > *before {
                counter!("insights_series_pruned_total", "level" => label, "reason" => reason)
                    .increment(now - *before);
                *before = now;
            }
        }
        gauge!("insights_series_bytes", "level" => label).set(lv.bytes as f64);
        gauge!("insights_series_entries", "level" => label).set(lv.items as f64);
    }
    gauge!("insights_series_series").set(state.series.len() as f64);
    gauge!("insights_series_wal_bytes").set(wal_bytes as f64);
}

pub(crate) fn unsynced(payloads: u64) {
    gauge!("insights_series_unsynced_payloads").set(payloads as f64);
}

pub(crate) fn wal_error(op: &'static str) {
    counter!("insights_series_wal_errors_total", "op" => op).increment(1);
}

pub(crate) fn checkpoint(ok: bool) {
    counter!("insights_series_checkpoints_total", "result" => if ok { "ok" } else { "error" })
        .increment(1);
}
