//! Whether delivery is falling behind: the signal that lets background work run at the lowest
//! CPU priority while it keeps up, and at its ordinary background priority when it does not.
//!
//! Behind means the hand-off or a sink's queue is at least half full; caught up again means all
//! of them are under a quarter (the gap keeps it from flapping). The hand-off raises it from the
//! request path, so that a dispatcher starved of CPU is noticed too; the dispatcher raises it for
//! its sinks' queues and lowers it. Whoever schedules background threads waits on
//! [`Backlog::changed`].

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

#[derive(Default)]
pub struct Backlog {
    behind: AtomicBool,
    changed: Notify,
}

impl Backlog {
    pub fn is_behind(&self) -> bool {
        self.behind.load(Ordering::Acquire)
    }

    /// Waits until the state may have changed (read it with [`Backlog::is_behind`]); a change
    /// made before the call is not missed.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Takes the level of one queue, `held` of `capacity`: half full or more is behind.
    pub(crate) fn note(&self, held: usize, capacity: usize) {
        if held.saturating_mul(2) >= capacity && !self.is_behind() {
            self.set(true);
        }
    }

    /// Takes the fullest queue's level: under a quarter everywhere is caught up.
    pub(crate) fn settle(&self, fullest: usize, capacity: usize) {
        if fullest.saturating_mul(2) >= capacity {
            self.note(fullest, capacity);
        } else if fullest.saturating_mul(4) < capacity && self.is_behind() {
            self.set(false);
        }
    }

    fn set(&self, behind: bool) {
        if self.behind.swap(behind, Ordering::AcqRel) != behind {
            metrics::gauge!("insights_background_behind").set(if behind { 1.0 } else { 0.0 });
            if behind {
                metrics::counter!("insights_background_behind_total").increment(1);
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

    #[test]
    fn behind_from_half_full_caught_up_under_a_quarter() {
        let b = Backlog::default();
        b.note(49, 100);
        assert!(!b.is_behind());
        b.note(50, 100);
        assert!(b.is_behind());
        b.settle(30, 100); // between a quarter and a half: still behind
        assert!(b.is_behind());
        b.settle(24, 100);
        assert!(!b.is_behind());
        b.settle(60, 100);
        assert!(b.is_behind());
    }
}
