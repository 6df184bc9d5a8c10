//! The series sink: every payload into the embedded series store (`insights-series`), beside
//! the payload store and Kafka, on its own queue like every sink, never on the request path.
//!
//! The store's input is a stream of payloads (their exact JSON and whether the execution
//! failed), so the same store can later be fed by a Kafka consumer beside a fleet of servers.
//! One batch is one write-ahead-log record; a batch the store cannot log is dropped for this
//! sink and counted (`series_error`). Payloads the store refuses one by one (a bad time, a
//! missing key) are counted by the store itself (`insights_series_payloads_refused_total`).

use std::sync::Arc;

use insights_series::{Incoming, SeriesStore};

use crate::sink::{BoxFuture, DropReason, EncodedPayload, Outcome, PayloadSink, SinkError};

/// Writes every batch to a [`SeriesStore`].
pub struct SeriesSink {
    store: Arc<SeriesStore>,
}

impl SeriesSink {
    pub fn new(store: Arc<SeriesStore>) -> Self {
        Self { store }
    }
}

impl PayloadSink for SeriesSink {
    fn name(&self) -> &'static str {
        "series"
    }

    fn queue_full(&self) -> DropReason {
        DropReason::SeriesQueueFull
    }

    fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
        let store = self.store.clone();
        Box::pin(async move {
            let ingest = move || {
                let incoming: Vec<Incoming<'_>> = batch
                    .iter()
                    .map(|p| Incoming::new(&p.json, p.failed))
                    .collect();
                store.ingest_batch(&incoming)
            };
            let failed = match tokio::task::spawn_blocking(ingest).await {
                Ok(Ok(_report)) => return Outcome::Delivered,
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            Outcome::Dropped {
                reason: DropReason::SeriesError,
                error: SinkError {
                    sink: "series",
                    message: failed,
                },
            }
        })
    }
}
