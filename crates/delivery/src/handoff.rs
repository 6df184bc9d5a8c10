//! The bounded hand-off from the request path to delivery: the one seam between executing
//! algorithms and delivering their payloads. `offer` never waits, and it wakes the dispatcher
//! only when the dispatcher asked for it: for the first payload of a batch, and when a batch is
//! full. (A wake-up per payload is a context switch per call on the cores the calls use.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use insights_payload::Payload;
use tokio::sync::{Notify, mpsc};

use crate::{Backlog, DropReason};

/// The request path's end of the hand-off. Cheap to clone.
#[derive(Clone)]
pub struct Handoff {
    tx: mpsc::Sender<Payload>,
    bell: Arc<Bell>,
    backlog: Arc<Backlog>,
}

/// Rung by `offer` when the hand-off holds as many payloads as the dispatcher waits for.
struct Bell {
    /// How many payloads the lingering dispatcher wants (0: it does not want to be woken).
    wanted: AtomicUsize,
    notify: Notify,
}

/// The dispatcher's end of the hand-off.
pub struct HandoffReceiver {
    rx: mpsc::Receiver<Payload>,
    bell: Arc<Bell>,
    pub(crate) backlog: Arc<Backlog>,
}

impl Handoff {
    /// A hand-off that holds at most `capacity` payloads not yet taken by the dispatcher.
    pub fn channel(capacity: usize) -> (Handoff, HandoffReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let bell = Arc::new(Bell {
            wanted: AtomicUsize::new(0),
            notify: Notify::new(),
        });
        let backlog = Arc::new(Backlog::default());
        (
            Handoff {
                tx,
                bell: bell.clone(),
                backlog: backlog.clone(),
            },
            HandoffReceiver { rx, bell, backlog },
        )
    }

    /// Whether delivery is falling behind (this hand-off or a sink's queue half full).
    pub fn backlog(&self) -> Arc<Backlog> {
        self.backlog.clone()
    }

    /// Hands a payload over without waiting. (The caller counts what it emits, in
    /// `insights_payloads_emitted_total`; this counts what it cannot take.) When the queue is full, or delivery has shut down,
    /// the payload is dropped and counted; the caller's response is never delayed.
    pub fn offer(&self, payload: Payload) {
        match self.tx.try_send(payload) {
            Ok(()) => {
                let depth = self.depth();
                self.backlog.note(depth, self.tx.max_capacity());
                let wanted = self.bell.wanted.load(Ordering::Acquire);
                if wanted != 0
                    && depth >= wanted
                    && self
                        .bell
                        .wanted
                        .compare_exchange(wanted, 0, Ordering::AcqRel, Ordering::Acquire)
                        .is_ok()
                {
                    self.bell.notify.notify_waiters();
                }
            }
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

impl HandoffReceiver {
    /// Waits for at least one payload and takes up to `max` into `batch`; 0 once every
    /// `Handoff` is dropped (or the receiver closed) and nothing is left.
    pub(crate) async fn recv_many(&mut self, batch: &mut Vec<Payload>, max: usize) -> usize {
        self.rx.recv_many(batch, max).await
    }

    /// Lets `batch` fill to `max` payloads until `deadline`, without being woken by the
    /// payloads in between: sleeps until the hand-off holds what is missing or the deadline
    /// passes, then takes what is there, up to `max`.
    pub(crate) async fn fill(
        &mut self,
        batch: &mut Vec<Payload>,
        max: usize,
        deadline: tokio::time::Instant,
    ) {
        let missing = max.saturating_sub(batch.len());
        if missing == 0 {
            return;
        }
        let notified = self.bell.notify.notified();
        tokio::pin!(notified);
        // Registered before the bell is armed, so an `offer` that sees the request wakes us.
        notified.as_mut().enable();
        self.bell.wanted.store(missing, Ordering::Release);
        if self.rx.len() < missing {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = &mut notified => {}
            }
        }
        self.bell.wanted.store(0, Ordering::Release);
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
    }

    /// Refuses further offers (they are counted as dropped); what was accepted can still be
    /// taken.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }

    /// Payloads waiting in the hand-off.
    pub(crate) fn len(&self) -> usize {
        self.rx.len()
    }

    pub(crate) fn max_capacity(&self) -> usize {
        self.rx.max_capacity()
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
        assert_eq!(rx.rx.recv().await.unwrap().request_id, kept[0].request_id);
    }
}
