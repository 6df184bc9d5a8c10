//! The bounded hand-off from the request path, and the dispatcher that drains it into sinks.

use std::sync::Arc;

use insights_payload::{AlgorithmRef, Payload};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A payload encoded once, shared by every sink.
#[derive(Debug, Clone)]
pub struct EncodedPayload {
    pub algorithm: AlgorithmRef,
    pub request_id: String,
    /// The payload's `time` in microseconds since the Unix epoch.
    pub time_us: i64,
    /// The exact JSON object, as [`Payload::to_json`] made it.
    pub json: Arc<str>,
}

impl EncodedPayload {
    pub fn new(p: &Payload) -> Self {
        Self {
            algorithm: p.algorithm.clone(),
            request_id: p.request_id.as_str().to_string(),
            time_us: (p.time.unix_timestamp_nanos() / 1000) as i64,
            json: p.to_json().into(),
        }
    }
}

/// The future a [`PayloadSink`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A sink could not take a batch, and gave up on it after its own retries.
#[derive(Debug, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    pub sink: &'static str,
    pub message: String,
}

/// A destination for payloads. A sink owns its retries; when it returns an error the batch is
/// counted as dropped by it, with reason `<sink>_error`.
pub trait PayloadSink: Send + Sync {
    fn name(&self) -> &'static str;
    fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Result<(), SinkError>>;
}

/// The request path's end of the hand-off. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::Sender<Payload>,
}

impl Handoff {
    /// A hand-off that holds at most `capacity` payloads not yet taken by the dispatcher.
    pub fn channel(capacity: usize) -> (Handoff, mpsc::Receiver<Payload>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Handoff { tx }, rx)
    }

    /// Hands a payload over without waiting. (The caller counts what it emits, in
    /// `insights_payloads_emitted_total`; this counts what it cannot take.) When the queue is full, or delivery has shut down,
    /// the payload is dropped and counted; the caller's response is never delayed.
    pub fn offer(&self, payload: Payload) {
        match self.tx.try_send(payload) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(p)) => {
                metrics::counter!("insights_payloads_dropped_total", "reason" => "handoff_full")
                    .increment(1);
                tracing::warn!(request_id = %p.request_id, "payload dropped: the delivery hand-off is full");
            }
            Err(mpsc::error::TrySendError::Closed(p)) => {
                metrics::counter!("insights_payloads_dropped_total", "reason" => "shutting_down")
                    .increment(1);
                tracing::warn!(request_id = %p.request_id, "payload dropped: delivery has shut down");
            }
        }
    }

    /// Payloads waiting in the hand-off.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[derive(Debug, Clone)]
pub struct DispatcherConfig {
    /// Payloads taken from the hand-off at once and written to each sink as one batch.
    pub max_batch: usize,
    /// How long a batch that is not full waits for more payloads before it is written: a group
    /// commit, so that a steady trickle costs one write per interval rather than one per payload.
    pub linger: Duration,
}

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            max_batch: 1024,
            linger: Duration::from_millis(5),
        }
    }
}

/// Drains the hand-off into every sink, batch by batch.
pub struct Dispatcher {
    rx: mpsc::Receiver<Payload>,
    sinks: Vec<Arc<dyn PayloadSink>>,
    config: DispatcherConfig,
}

impl Dispatcher {
    pub fn new(
        rx: mpsc::Receiver<Payload>,
        sinks: Vec<Arc<dyn PayloadSink>>,
        config: DispatcherConfig,
    ) -> Self {
        Self { rx, sinks, config }
    }

    /// Runs until `shutdown` is cancelled, then stops taking new payloads, delivers every
    /// payload already handed over, and returns.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let max = self.config.max_batch;
        let mut batch = Vec::with_capacity(max);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                n = self.rx.recv_many(&mut batch, max) => {
                    if n == 0 {
                        return; // every Handoff was dropped and the queue is empty
                    }
                    self.linger(&mut batch).await;
                    self.deliver(&batch).await;
                    batch.clear();
                }
            }
        }
        // Refuse new offers (they are counted as dropped), then deliver what was accepted.
        self.rx.close();
        while self.rx.recv_many(&mut batch, max).await > 0 {
            self.deliver(&batch).await;
            batch.clear();
        }
    }

    /// Lets a batch fill for up to `linger`.
    async fn linger(&mut self, batch: &mut Vec<Payload>) {
        let max = self.config.max_batch;
        let deadline = tokio::time::Instant::now() + self.config.linger;
        while batch.len() < max {
            let room = max - batch.len();
            match tokio::time::timeout_at(deadline, self.rx.recv_many(batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }

    async fn deliver(&self, batch: &[Payload]) {
        let encoded: Arc<[EncodedPayload]> = batch.iter().map(EncodedPayload::new).collect();
        for sink in &self.sinks {
            if let Err(e) = sink.write(encoded.clone()).await {
                let reason = format!("{}_error", sink.name());
                metrics::counter!("insights_payloads_dropped_total", "reason" => reason)
                    .increment(encoded.len() as u64);
                tracing::error!(error = %e, payloads = encoded.len(), "payloads dropped by a sink");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use insights_payload::{MetricSet, RequestId, SessionId};
    use std::sync::Mutex;

    struct Recording(Mutex<Vec<String>>);

    impl PayloadSink for Recording {
        fn name(&self) -> &'static str {
            "recording"
        }
        fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Result<(), SinkError>> {
            Box::pin(async move {
                self.0
                    .lock()
                    .unwrap()
                    .extend(batch.iter().map(|p| p.request_id.clone()));
                Ok(())
            })
        }
    }

    fn payload() -> Payload {
        Payload {
            algorithm: AlgorithmRef {
                owner: "o".into(),
                name: "n".into(),
                version: "1.0.0".into(),
            },
            session_id: SessionId::new(),
            request_id: RequestId::new(),
            duration_milliseconds: 1,
            time: time::OffsetDateTime::now_utc(),
            metrics: MetricSet::new(),
            status: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickle_is_written_in_one_batch_per_linger_interval() {
        let (handoff, rx) = Handoff::channel(100);
        let sink = Arc::new(Batches(Mutex::new(Vec::new())));
        let shutdown = CancellationToken::new();
        let config = DispatcherConfig {
            max_batch: 100,
            linger: Duration::from_millis(10),
        };
        let task =
            tokio::spawn(Dispatcher::new(rx, vec![sink.clone()], config).run(shutdown.clone()));
        // Five payloads 1 ms apart fall into one 10 ms window; the sixth comes after it.
        for _ in 0..5 {
            handoff.offer(payload());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        handoff.offer(payload());
        tokio::time::sleep(Duration::from_millis(20)).await;
        shutdown.cancel();
        task.await.unwrap();
        assert_eq!(*sink.0.lock().unwrap(), [5, 1]);
    }

    struct Batches(Mutex<Vec<usize>>);

    impl PayloadSink for Batches {
        fn name(&self) -> &'static str {
            "batches"
        }
        fn write(&self, batch: Arc<[EncodedPayload]>) -> BoxFuture<'_, Result<(), SinkError>> {
            Box::pin(async move {
                self.0.lock().unwrap().push(batch.len());
                Ok(())
            })
        }
    }

    #[tokio::test]
    async fn a_full_handoff_drops_instead_of_blocking() {
        let (handoff, mut rx) = Handoff::channel(2);
        let kept: Vec<_> = (0..2).map(|_| payload()).collect();
        for p in &kept {
            handoff.offer(p.clone());
        }
        assert_eq!(handoff.depth(), 2);
        handoff.offer(payload()); // returns at once: dropped, not queued
        assert_eq!(handoff.depth(), 2);
        assert_eq!(rx.recv().await.unwrap().request_id, kept[0].request_id);
    }

    #[tokio::test]
    async fn shutdown_delivers_everything_already_handed_over() {
        let (handoff, rx) = Handoff::channel(100);
        let sink = Arc::new(Recording(Mutex::new(Vec::new())));
        let offered: Vec<String> = (0..50)
            .map(|_| {
                let p = payload();
                let id = p.request_id.to_string();
                handoff.offer(p);
                id
            })
            .collect();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        Dispatcher::new(
            rx,
            vec![sink.clone()],
            DispatcherConfig {
                max_batch: 7,
                linger: Duration::from_millis(1),
            },
        )
        .run(shutdown)
        .await;
        assert_eq!(*sink.0.lock().unwrap(), offered);
        // After shutdown, an offer is refused at once rather than lost in a queue nobody reads.
        handoff.offer(payload());
        assert_eq!(handoff.depth(), 0);
    }
}
