//! What every sink shares: the encoded payload it is given, the trait it implements, and the
//! outcome it answers with.
//!
//! An outcome is a type, not a string: a sink says whether a batch was delivered, is kept and
//! retried by the sink itself, or was dropped, and a drop names its [`DropReason`]. The label of
//! `insights_payloads_dropped_total{reason}` is derived from that enum in one exhaustive match
//! ([`DropReason::label`]), so a new reason cannot be counted before it has a label of its own,
//! and a misspelled one does not compile.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use insights_payload::{AlgorithmRef, MetricSet, Payload};

/// A payload encoded once, shared by every sink: its JSON, and the values it was made from,
/// so that a sink that needs the values (Datadog's series) reads them here instead of parsing
/// the JSON again. Made only from a [`Payload`], so the two always agree.
#[derive(Debug, Clone)]
pub struct EncodedPayload {
    pub(crate) algorithm: AlgorithmRef,
    pub(crate) request_id: String,
    pub(crate) session_id: String,
    /// The payload's `time` in microseconds since the Unix epoch.
    pub(crate) time_us: i64,
    pub(crate) duration_milliseconds: u64,
    /// The reported metrics, in the order [`Payload::to_json`] writes them.
    pub(crate) metrics: MetricSet,
    /// The exact JSON object, as [`Payload::to_json`] made it.
    pub(crate) json: Arc<str>,
    /// Whether the execution failed (see [`Payload::failed`]).
    pub(crate) failed: bool,
}

impl EncodedPayload {
    pub fn new(p: &Payload) -> Self {
        Self::from_payload(p.clone())
    }

    /// The same as [`EncodedPayload::new`], taking the payload's strings and metrics instead
    /// of copying them (the dispatcher owns each payload, and drops it once encoded).
    pub fn from_payload(p: Payload) -> Self {
        let json = p.to_json().into();
        Self {
            time_us: (p.time.unix_timestamp_nanos() / 1000) as i64,
            algorithm: p.algorithm,
            request_id: p.request_id.into_string(),
            session_id: p.session_id.into_string(),
            duration_milliseconds: p.duration_milliseconds,
            metrics: p.metrics,
            json,
            failed: p.failed,
        }
    }

    /// The exact JSON object, as [`Payload::to_json`] made it.
    pub fn json(&self) -> &str {
        &self.json
    }

    pub fn request_id(&self) -> &str {
        &self.request_id
    }
}

/// The future a [`PayloadSink`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What went wrong when a sink gave up on a batch (after its own retries), for the log.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    pub sink: &'static str,
    pub message: String,
}

/// A destination for payloads. The dispatcher gives each sink a queue and a task of its own, so
/// a sink may take its time (retry, wait for a disk) without delaying any other; it owns its
/// retries, and answers each batch with an [`Outcome`].
pub trait PayloadSink: Send + Sync {
    /// For the log: `store`, `kafka`.
    fn name(&self) -> &'static str;
    /// What a batch is counted as when this sink's queue in the dispatcher is full (it fell that
    /// far behind) and the batch is dropped for it: `<sink>_queue_full`.
    fn queue_full(&self) -> DropReason;
    fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome>;
    /// The backlog this sink's queue in the dispatcher reports to, when its threads follow one
    /// of their own (Datadog's lane) rather than delivery's: a remote sink falling behind then
    /// raises only its own threads, and the hand-off or another sink falling behind does not
    /// raise it. `None`: delivery's.
    fn backlog(&self) -> Option<Arc<crate::Backlog>> {
        None
    }
}

/// What became of a batch a sink was given (after Vector's `EventStatus`).
#[derive(Debug)]
#[must_use]
pub enum Outcome {
    /// At its destination (the store: committed).
    Delivered,
    /// Kept by the sink, which goes on trying to deliver it (Kafka: appended to the spool and
    /// sent within its window). What the sink gives up on later it counts itself, each payload
    /// under its own [`DropReason`].
    WillRetry,
    /// Not for this sink (Kafka without a connection): nothing to deliver, nothing lost.
    Skipped,
    /// Given up on: the dispatcher counts every payload of the batch under `reason` and logs
    /// `error`.
    Dropped {
        reason: DropReason,
        error: SinkError,
    },
}

/// Why a payload did not reach a sink: the `reason` label of
/// `insights_payloads_dropped_total`. Every label is pinned by a test; dashboards and alerts
/// read them, so a label is never renamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The hand-off was full when the request path offered the payload.
    HandoffFull,
    /// Offered after delivery shut down.
    ShuttingDown,
    /// The store refused a batch after its retries.
    StoreError,
    /// The store sink fell behind by a full queue; the batch was dropped for it.
    StoreQueueFull,
    /// The Kafka sink could not spool a batch (the disk refused it, or its thread has stopped).
    KafkaError,
    /// The Kafka sink fell behind by a full queue; the batch was dropped for it.
    KafkaQueueFull,
    /// Not acknowledged by Kafka within its window.
    KafkaWindowExpired,
    /// Evicted from the spool to keep it within `spool_max_bytes`.
    KafkaSpoolFull,
    /// Refused by Kafka in a way no retry can change (too large, not authorized).
    KafkaRejected,
    /// Unreadable in the spool.
    KafkaSpoolCorrupt,
    /// The series store could not take a batch (its write-ahead log refused it).
    SeriesError,
    /// The series sink fell behind by a full queue; the batch was dropped for it.
    SeriesQueueFull,
    /// The Datadog sink could not spool a batch (the disk refused it, or its thread stopped).
    DatadogError,
    /// The Datadog sink fell behind by a full queue; the batch was dropped for it.
    DatadogQueueFull,
    /// Not accepted by Datadog within its window.
    DatadogWindowExpired,
    /// Its `time` was older than Datadog takes (an hour) when it was to be sent.
    DatadogTooOld,
    /// Evicted from the Datadog spool to keep it within its bound.
    DatadogSpoolFull,
    /// Refused by Datadog in a way no retry can change (400; 413 for a payload alone).
    DatadogRejected,
    /// Unreadable in the Datadog spool.
    DatadogSpoolCorrupt,
}

impl DropReason {
    /// Every reason, for tests and documentation.
    pub const ALL: [DropReason; 19] = [
        DropReason::HandoffFull,
        DropReason::ShuttingDown,
        DropReason::StoreError,
        DropReason::StoreQueueFull,
        DropReason::KafkaError,
        DropReason::KafkaQueueFull,
        DropReason::KafkaWindowExpired,
        DropReason::KafkaSpoolFull,
        DropReason::KafkaRejected,
        DropReason::KafkaSpoolCorrupt,
        DropReason::SeriesError,
        DropReason::SeriesQueueFull,
        DropReason::DatadogError,
        DropReason::DatadogQueueFull,
        DropReason::DatadogWindowExpired,
        DropReason::DatadogTooOld,
        DropReason::DatadogSpoolFull,
        DropReason::DatadogRejected,
        DropReason::DatadogSpoolCorrupt,
    ];

    /// The `reason` label of `insights_payloads_dropped_total`.
    pub fn label(&self) -> &'static str {
        match self {
            DropReason::HandoffFull => "handoff_full",
            DropReason::ShuttingDown => "shutting_down",
            DropReason::StoreError => "store_error",
            DropReason::StoreQueueFull => "store_queue_full",
            DropReason::KafkaError => "kafka_error",
            DropReason::KafkaQueueFull => "kafka_queue_full",
            DropReason::KafkaWindowExpired => "kafka_window_expired",
            DropReason::KafkaSpoolFull => "kafka_spool_full",
            DropReason::KafkaRejected => "kafka_rejected",
            DropReason::KafkaSpoolCorrupt => "kafka_spool_corrupt",
            DropReason::SeriesError => "series_error",
            DropReason::SeriesQueueFull => "series_queue_full",
            DropReason::DatadogError => "datadog_error",
            DropReason::DatadogQueueFull => "datadog_queue_full",
            DropReason::DatadogWindowExpired => "datadog_window_expired",
            DropReason::DatadogTooOld => "datadog_too_old",
            DropReason::DatadogSpoolFull => "datadog_spool_full",
            DropReason::DatadogRejected => "datadog_rejected",
            DropReason::DatadogSpoolCorrupt => "datadog_spool_corrupt",
        }
    }

    /// Counts `n` payloads dropped for this reason.
    pub(crate) fn count(self, n: u64) {
        metrics::counter!("insights_payloads_dropped_total", "reason" => self.label()).increment(n);
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// The write of a remote sink whose spool is owned by a thread of its own (Kafka, Datadog):
/// `send` hands the batch and a reply channel to that thread (false: it has stopped), which
/// answers once the batch is in the spool. From there the thread delivers each payload within
/// its window or counts it dropped, so the batch is `WillRetry`; a spool that cannot be written
/// or a stopped thread drops the batch with `reason`.
pub(crate) async fn append_to_spool(
    sink: &'static str,
    reason: DropReason,
    send: impl FnOnce(tokio::sync::oneshot::Sender<Result<(), String>>) -> bool,
) -> Outcome {
    let fail = |message: String| Outcome::Dropped {
        reason,
        error: SinkError { sink, message },
    };
    let (reply, done) = tokio::sync::oneshot::channel();
    if !send(reply) {
        return fail("the delivery thread has stopped".into());
    }
    match done.await {
        Ok(Ok(())) => Outcome::WillRetry,
        Ok(Err(e)) => fail(format!("the spool could not be written: {e}")),
        Err(_) => fail("the delivery thread has stopped".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::{DropReason, EncodedPayload};

    #[test]
    fn a_payload_taken_is_encoded_as_a_payload_borrowed() {
        let mut p = crate::handoff::tests::payload();
        p.failed = true;
        let half = serde_json::Number::from_f64(0.5).unwrap();
        p.metrics.insert("risk", half.into()).unwrap();
        let (a, b) = (
            EncodedPayload::new(&p),
            EncodedPayload::from_payload(p.clone()),
        );
        for e in [&a, &b] {
            assert_eq!(e.algorithm, p.algorithm);
            assert_eq!(e.request_id, p.request_id.as_str());
            assert_eq!(e.session_id, p.session_id.as_str());
            assert_eq!(e.time_us, (p.time.unix_timestamp_nanos() / 1000) as i64);
            assert_eq!(e.duration_milliseconds, p.duration_milliseconds);
            assert_eq!(e.metrics, p.metrics);
            assert_eq!(*e.json, p.to_json());
            assert!(e.failed);
        }
    }

    /// The labels as they were when reasons were strings (`<sink>_error` for a sink's error):
    /// dashboards, alerts, docs and tests read them.
    #[test]
    fn every_drop_reason_keeps_its_label() {
        let labels: Vec<&str> = DropReason::ALL.iter().map(DropReason::label).collect();
        assert_eq!(
            labels,
            [
                "handoff_full",
                "shutting_down",
                "store_error",
                "store_queue_full",
                "kafka_error",
                "kafka_queue_full",
                "kafka_window_expired",
                "kafka_spool_full",
                "kafka_rejected",
                "kafka_spool_corrupt",
                "series_error",
                "series_queue_full",
                "datadog_error",
                "datadog_queue_full",
                "datadog_window_expired",
                "datadog_too_old",
                "datadog_spool_full",
                "datadog_rejected",
                "datadog_spool_corrupt",
            ]
        );
    }
}
