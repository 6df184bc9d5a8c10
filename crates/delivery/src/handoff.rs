//! The bounded hand-off from the request path to delivery: the one seam between executing
//! algorithms and delivering their payloads. `offer` never waits.

use insights_payload::Payload;
use tokio::sync::mpsc;

use crate::DropReason;

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
                DropReason::HandoffFull.count(1);
                tracing::warn!(request_id = %p.request_id, "payload dropped: the delivery hand-off is full");
            }
            Err(mpsc::error::TrySendError::Closed(p)) => {
                DropReason::ShuttingDown.count(1);
                tracing::warn!(request_id = %p.request_id, "payload dropped: delivery has shut down");
            }
        }
    }

    /// Payloads waiting in the hand-off.
    pub fn depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use insights_payload::{AlgorithmRef, MetricSet, RequestId, SessionId};

    pub(crate) fn payload() -> Payload {
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
            failed: false,
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
}
