//! The embedded store as a sink: payloads kept in SQLite for the admin API and panel, within a
//! retention bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use insights_store::{PayloadRow, Store};

use crate::{BoxFuture, DropReason, EncodedPayload, Outcome, PayloadSink, SinkError};

/// Writes batches into the store, retrying a failed write a few times, and prunes the oldest
/// payloads so that at most `retention` remain (counted in `insights_payloads_pruned_total`).
pub struct StoreSink {
    store: Arc<Store>,
    retention: u64,
    written_since_prune: AtomicU64,
}

const ATTEMPTS: u32 = 3;

impl StoreSink {
    pub fn new(store: Arc<Store>, retention: u64) -> Self {
        Self {
            store,
            retention,
            written_since_prune: AtomicU64::new(0),
        }
    }
}

impl PayloadSink for StoreSink {
    fn name(&self) -> &'static str {
        "store"
    }

    fn queue_full(&self) -> DropReason {
        DropReason::StoreQueueFull
    }

    fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            let mut last_error = String::new();
            for attempt in 0..ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                let (store, rows) = (self.store.clone(), batch.clone());
                let insert = move || {
                    store.insert_payloads(rows.iter().map(|p| PayloadRow {
                        owner: &p.algorithm.owner,
                        name: &p.algorithm.name,
                        version: &p.algorithm.version,
                        time_us: p.time_us,
                        json: &p.json,
                    }))
                };
                match tokio::task::spawn_blocking(insert).await {
                    Ok(Ok(())) => {
                        metrics::counter!("insights_payloads_stored_total")
                            .increment(batch.len() as u64);
                        self.maybe_prune(batch.len() as u64).await;
                        return Outcome::Delivered;
                    }
                    Ok(Err(e)) => last_error = e.to_string(),
                    Err(e) => last_error = e.to_string(),
                }
                tracing::warn!(attempt, error = %last_error, "storing payloads failed");
            }
            Outcome::Dropped {
                reason: DropReason::StoreError,
                error: SinkError {
                    sink: "store",
                    message: last_error,
                },
            }
        })
    }
}

impl StoreSink {
    async fn maybe_prune(&self, written: u64) {
        // Pruning is a range delete on the primary key; doing it every ~1% of the retention
        // keeps the table within 1% of its bound without a delete per batch.
        let every = (self.retention / 100).max(1);
        let since = self
            .written_since_prune
            .fetch_add(written, Ordering::Relaxed)
            + written;
        if since < every {
            return;
        }
        self.written_since_prune.store(0, Ordering::Relaxed);
        let (store, keep) = (self.store.clone(), self.retention);
        match tokio::task::spawn_blocking(move || store.prune_payloads(keep)).await {
            Ok(Ok(n)) => metrics::counter!("insights_payloads_pruned_total").increment(n),
            Ok(Err(e)) => tracing::warn!(error = %e, "pruning old payloads failed"),
            Err(e) => tracing::warn!(error = %e, "pruning old payloads failed"),
        }
    }
}
