//! The Kafka sink: what the dispatcher and the admin see of Kafka delivery. `write` returns once
//! the batch is appended to the spool (the producer thread does the appending, so that one
//! thread owns the spool); `connect` changes the connection; `status` is the state the admin
//! API and panel show.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use insights_kafka::{ConnectionSettings, Failure};
use serde::Serialize;
use tokio::sync::oneshot;

use super::KafkaConfig;
use super::service::{Event, ProducerThread};
use crate::spool::{Spool, SpoolConfig};
use crate::{BoxFuture, DropReason, EncodedPayload, Lag, Outcome, PayloadSink};

/// The state of the connection, for the admin API and panel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KafkaStatus {
    /// `not_configured`, `connecting`, `connected` (a broker connection is up and the topic
    /// can take writes) or `failing`.
    pub state: &'static str,
    /// What delivery fails on, when `failing` and the cause is known: `unknown_topic`,
    /// `not_authorized`, `no_leader`, `timed_out`, `unreachable`, `authentication_failed`,
    /// `tls_failed`.
    pub problem: Option<Failure>,
    /// The error behind `state` (librdkafka's, or what the topic's metadata says).
    pub last_error: Option<String>,
    pub delivered: u64,
    pub dropped: u64,
    pub dropped_by_reason: HashMap<&'static str, u64>,
    /// Handed over, neither delivered nor dropped yet.
    pub waiting: u64,
    pub window_seconds: u64,
}

/// The handle: a [`PayloadSink`], and the way to change the connection.
pub struct KafkaDelivery {
    events: mpsc::Sender<Event>,
    status: Arc<Mutex<KafkaStatus>>,
    configured: Arc<AtomicBool>,
    lag: Arc<Lag>,
}

impl KafkaDelivery {
    /// Opens the spool (recovering what a previous process left) and starts the producer thread.
    pub fn start(config: KafkaConfig) -> std::io::Result<KafkaDelivery> {
        let spool = Spool::open(SpoolConfig {
            dir: config.spool_dir.clone(),
            segment_bytes: config.segment_bytes,
            max_bytes: config.spool_max_bytes,
            fsync: config.fsync,
        })?;
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(Mutex::new(KafkaStatus {
            state: "not_configured",
            waiting: spool.unresolved(),
            window_seconds: config.window.as_secs(),
            ..Default::default()
        }));
        let configured = Arc::new(AtomicBool::new(false));
        let lag = Arc::new(Lag::default());
        ProducerThread::spawn(config, spool, tx.clone(), rx, status.clone(), lag.clone())?;
        Ok(KafkaDelivery {
            events: tx,
            status,
            configured,
            lag,
        })
    }

    /// How long payloads have waited on Kafka delivery without progress (nothing acknowledged,
    /// nothing dropped): how the server tells when the producer's threads, which run on idle
    /// CPU, have waited for it long enough. Waiting on a broker that is away counts too; the
    /// threads raised then mostly sleep.
    pub fn lag(&self) -> Arc<Lag> {
        self.lag.clone()
    }

    /// Uses `settings` from now on (or none: disconnect). Payloads waiting for the previous
    /// connection are sent through the new one.
    pub fn connect(&self, settings: Option<ConnectionSettings>) {
        self.configured.store(settings.is_some(), Ordering::Release);
        let _ = self.events.send(Event::Connect(settings.map(Box::new)));
    }

    pub fn status(&self) -> KafkaStatus {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the delivery thread. What is still waiting stays in the spool for the next start.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.events.send(Event::Stop(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

impl PayloadSink for KafkaDelivery {
    fn name(&self) -> &'static str {
        "kafka"
    }

    fn queue_full(&self) -> DropReason {
        DropReason::KafkaQueueFull
    }

    /// Returns once the batch is in the spool: from there the producer thread delivers each
    /// payload within its window, or counts it as dropped.
    fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Outcome> {
        Box::pin(async move {
            // No connection configured: these payloads are not meant for Kafka.
            if !self.configured.load(Ordering::Acquire) {
                return Outcome::Skipped;
            }
            crate::sink::append_to_spool("kafka", DropReason::KafkaError, |reply| {
                self.events.send(Event::Append { batch, reply }).is_ok()
            })
            .await
        })
    }
}
