//! Whether delivery is falling behind: the signal that lets background work run at the lowest
//! CPU priority while it keeps up, and at its ordinary background priority when it does not.
//!
//! Behind means the hand-off or a sink's queue is at least half full, or work has waited
//! without progress for longer than [`Backlog::STALL`] (at a low call rate on cores that other
//! processes keep busy, the queues never fill); caught up again means every queue is under a
//! quarter (the gap keeps it from flapping). The hand-off raises it from the request path, so
//! that a dispatcher starved of CPU is noticed too; the dispatcher raises it for its sinks'
//! queues and lowers it; [`Backlog::check_stalled`], called by whoever schedules background
//! threads from a thread of its own priority, raises it for work that waits. That scheduler
//! waits on [`Backlog::changed`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub struct Backlog {
    /// Whose threads follow it, for `/metrics`: `delivery` (the background runtime) or a remote
    /// sink's lane (`datadog`).
    lane: &'static str,
    behind: AtomicBool,
    changed: Notify,
    /// The hand-off's depth, as last seen (at an offer; when the dispatcher settles).
    handoff_depth: AtomicUsize,
    /// Sinks whose queue holds payloads (queued or being written).
    busy_sinks: AtomicUsize,
    /// When the dispatcher or a sink last made progress, in microseconds since `epoch`.
    progress_us: AtomicU64,
    epoch: Instant,
}

impl Default for Backlog {
    fn default() -> Self {
        Backlog::of_lane("delivery")
    }
}

impl Backlog {
    /// The backlog a remote sink's own lane follows (see `PayloadSink::backlog`), counted in
    /// `/metrics` under `lane`.
    pub fn of_lane(lane: &'static str) -> Backlog {
        Backlog {
            lane,
            behind: AtomicBool::new(false),
            changed: Notify::new(),
            handoff_depth: AtomicUsize::new(0),
            busy_sinks: AtomicUsize::new(0),
            progress_us: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// How long waiting work may go without progress before delivery counts as behind.
    pub const STALL: Duration = Duration::from_millis(250);

    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// The dispatcher took a batch, or a sink finished a write.
    pub(crate) fn progressed(&self) {
        self.progress_us.store(self.now_us(), Ordering::Release);
    }

    /// Raises the backlog if work has waited without progress for longer than [`Self::STALL`];
    /// answers whether it is behind.
    pub fn check_stalled(&self) -> bool {
        if self.is_behind() {
            return true;
        }
        let idle_for = self
            .now_us()
            .saturating_sub(self.progress_us.load(Ordering::Acquire));
        if self.is_waiting() && idle_for > Self::STALL.as_micros() as u64 {
            self.set(true);
        }
        self.is_behind()
    }

    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Waits until the state may have changed (read it with [`Backlog::is_behind`]); a change
    /// made before the call is not missed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Whether anything waits: in the hand-off, or in a sink's queue.
    pub fn is_waiting(&self) -> bool {
        self.handoff_depth.load(Ordering::Acquire) > 0
            || self.busy_sinks.load(Ordering::Acquire) > 0
    }

    /// Takes the hand-off's depth at an offer, `depth` of `capacity`: half full or more is
    /// behind.
    pub(crate) fn note(&self, depth: usize, capacity: usize) {
        if !self.is_waiting() {
            // Work starts waiting now: a stall counts from here, not from progress long ago.
            self.progressed();
        }
        self.handoff_depth.store(depth, Ordering::Release);
        self.raise_if_half_full(depth, capacity);
    }

    fn raise_if_half_full(&self, held: usize, capacity: usize) {
        if held.saturating_mul(2) >= capacity && !self.is_behind() {
            self.set(true);
        }
    }

    /// Takes the levels the dispatcher sees after handing a batch over: the hand-off's depth
    /// and the fullest sink queue. Under a quarter everywhere is caught up.
    pub(crate) fn settle(&self, handoff_depth: usize, fullest: usize, capacity: usize) {
        self.progressed();
        self.handoff_depth.store(handoff_depth, Ordering::Release);
        let fullest = fullest.max(handoff_depth);
        if fullest.saturating_mul(2) >= capacity {
            self.raise_if_half_full(fullest, capacity);
        } else if fullest.saturating_mul(4) < capacity && self.is_behind() {
            self.set(false);
        }
    }

    /// A sink's queue went from empty to holding payloads.
    pub(crate) fn sink_busy(&self) {
        if !self.is_waiting() {
            self.progressed();
        }
        self.busy_sinks.fetch_add(1, Ordering::AcqRel);
    }

    /// A sink finished a write; `emptied` when its queue holds nothing more.
    pub(crate) fn written(&self, emptied: bool) {
        self.progressed();
        if emptied {
            self.busy_sinks.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn set(&self, behind: bool) {
        if self.behind.swap(behind, Ordering::AcqRel) != behind {
            metrics::gauge!("insights_background_behind", "lane" => self.lane).set(if behind {
                1.0
            } else {
                0.0
            });
            if behind {
                metrics::counter!("insights_background_behind_total", "lane" => self.lane)
                    .increment(1);
            }
            // A permit is kept when nobody waits, so a watcher that is not waiting yet still
            // sees it.
            self.changed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn work_that_waits_without_progress_past_the_stall_is_behind() {
        let b = Backlog::default();
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(!b.check_stalled(), "nothing waits");
        b.note(1, 100); // one payload, nowhere near half full
        tokio::time::advance(Backlog::STALL / 2).await;
        assert!(!b.check_stalled(), "waited less than the stall");
        // Progress: the dispatcher hands it to a sink, which holds it.
        b.sink_busy();
        b.settle(0, 1, 100);
        tokio::time::advance(Backlog::STALL / 2 + Duration::from_millis(1)).await;
        assert!(!b.check_stalled(), "counted from the progress");
        tokio::time::advance(Backlog::STALL).await;
        assert!(b.check_stalled(), "the sink has not written it");
        b.written(true);
        b.settle(0, 0, 100);
        assert!(!b.is_behind(), "caught up");
        tokio::time::advance(Backlog::STALL * 4).await;
        assert!(!b.check_stalled(), "nothing waits any more");
    }

    #[test]
    fn behind_from_half_full_caught_up_under_a_quarter() {
        let b = Backlog::default();
        b.note(49, 100);
        assert!(!b.is_behind());
        b.note(50, 100);
        assert!(b.is_behind());
        b.settle(0, 30, 100); // between a quarter and a half: still behind
        assert!(b.is_behind());
        b.settle(0, 24, 100);
        assert!(!b.is_behind());
        b.settle(60, 0, 100);
        assert!(b.is_behind());
    }
}
