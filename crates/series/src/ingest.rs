//! What ingest takes (a payload's exact JSON and how its execution ended) and what it answers
//! (what it stored, skipped, refused and dropped as late).

use std::fmt;

use crate::model::PerLevel;

/// Whether the execution behind a payload failed: known in-process, or read from the payload's
/// opt-in `status` key (`"error"` means failed; absent or anything else means it did not) when
/// the payload comes from Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    FromStatusKey,
}

impl From<bool> for Outcome {
    /// `true` means the execution failed.
    fn from(failed: bool) -> Self {
        if failed {
            Outcome::Failed
        } else {
            Outcome::Succeeded
        }
    }
}

/// One payload to ingest.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    /// The payload's exact JSON, as `Payload::to_json` wrote it.
    pub json: &'a str,
    pub outcome: Outcome,
}

impl<'a> Incoming<'a> {
    /// A payload from the in-process dispatcher, which knows whether the execution failed.
    pub fn new(json: &'a str, failed: bool) -> Self {
        Self {
            json,
            outcome: failed.into(),
        }
    }

    /// A payload from Kafka: failure is read from its `status` key.
    pub fn from_kafka(json: &'a str) -> Self {
        Self {
            json,
            outcome: Outcome::FromStatusKey,
        }
    }
}

/// The largest payload taken: 1 MiB, forty times what Algorithmia's limits allow (25 metrics,
/// 25,000 bytes of them) and Kafka's default message size.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;

/// Why a payload was refused. Nothing of a refused payload is stored; each is counted in
/// `insights_series_payloads_refused_total{reason}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Not JSON, or not an object.
    NotAnObject(String),
    /// An operational key is missing or of the wrong type.
    MissingKey(&'static str),
    /// `time` is not `YYYY-MM-DDTHH:MM:SS[.ffffff]` (UTC).
    BadTime(String),
    /// `time` is further ahead of the store's clock than `max_future`.
    InFuture(String),
    /// Longer than [`MAX_PAYLOAD_BYTES`].
    TooLarge(usize),
}

impl Refusal {
    /// The `reason` label in `/metrics`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NotAnObject(_) => "not_an_object",
            Refusal::MissingKey(_) => "missing_key",
            Refusal::BadTime(_) => "bad_time",
            Refusal::InFuture(_) => "in_future",
            Refusal::TooLarge(_) => "too_large",
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotAnObject(why) => write!(f, "not a JSON object: {why}"),
            Refusal::MissingKey(key) => write!(
                f,
                "the operational key `{key}` is missing or not of its type"
            ),
            Refusal::BadTime(t) => write!(
                f,
                "`time` is not a UTC time like 2021-02-20T00:21:54.867231: {t:?}"
            ),
            Refusal::InFuture(t) => write!(
                f,
                "`time` {t:?} is further ahead of this store's clock than max_future allows"
            ),
            Refusal::TooLarge(n) => write!(
                f,
                "{n} bytes is more than the {MAX_PAYLOAD_BYTES} bytes a payload may have"
            ),
        }
    }
}

/// A payload of a batch that was refused: its index in the batch and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub reason: Refusal,
}

/// What one ingest call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Payloads taken (written to the log and applied).
    pub accepted: usize,
    /// Payloads refused, in batch order.
    pub refused: Vec<Refused>,
    /// Numeric values taken from the accepted payloads (`duration_milliseconds` included, the
    /// two derived series not).
    pub values: usize,
    /// Values ignored: not numbers, an empty key, or a key under `insights.`.
    pub skipped_values: usize,
    /// Points older than a level's retention, not stored in that level (they may still be in a
    /// coarser one). The derived series' points are counted too.
    pub late_points: PerLevel<u64>,
}
