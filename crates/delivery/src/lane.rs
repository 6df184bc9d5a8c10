//! What whoever schedules a remote sink's threads (the server's `background` module) needs from
//! it: a call on each thread the sink starts, as it starts and before it exits, and how long
//! the sink has had work it could do but has not done ([`Lag`]). The delivery crate decides
//! nothing about priorities itself.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Hook = Arc<dyn Fn() + Send + Sync>;

/// Called on every thread a sink starts (its own and its runtime's blocking threads): `start`
/// first thing on the thread, `stop` last.
#[derive(Clone, Default)]
pub struct ThreadHooks {
    start: Option<Hook>,
    stop: Option<Hook>,
}

impl ThreadHooks {
    pub fn new(
        start: impl Fn() + Send + Sync + 'static,
        stop: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        ThreadHooks {
            start: Some(Arc::new(start)),
            stop: Some(Arc::new(stop)),
        }
    }

    fn started(&self) {
        if let Some(f) = &self.start {
            f();
        }
    }

    fn stopping(&self) {
        if let Some(f) = &self.stop {
            f();
        }
    }

    /// On a thread the sink starts, first thing: `start` now, `stop` when the guard drops (as
    /// the thread ends, also by a panic).
    pub fn enter(&self) -> Entered<'_> {
        self.started();
        Entered(self)
    }

    /// The hooks on the threads a tokio runtime starts.
    pub fn apply(&self, b: &mut tokio::runtime::Builder) {
        let (start, stop) = (self.clone(), self.clone());
        b.on_thread_start(move || start.started())
            .on_thread_stop(move || stop.stopping());
    }
}

/// A thread inside its [`ThreadHooks`] (see [`ThreadHooks::enter`]).
pub struct Entered<'a>(&'a ThreadHooks);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.stopping();
    }
}

impl fmt::Debug for ThreadHooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.start.is_some() {
            "ThreadHooks(set)"
        } else {
            "ThreadHooks(none)"
        })
    }
}

/// How long a sink's thread has had work it could do (payloads in its spool not handed to the
/// destination yet, a retry due) without catching up. The thread says at each turn whether it
/// caught up; a thread kept off the CPU says nothing, so its lag grows on its own, which is
/// what lets a scheduler on another thread notice it.
#[derive(Debug)]
pub struct Lag {
    /// Microseconds since `epoch` at which the work now waiting began to wait, plus one; 0 when
    /// caught up.
    since_us: AtomicU64,
    epoch: Instant,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            since_us: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

impl Lag {
    fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64 + 1
    }

    /// The thread's turn ended: with nothing left it could do now (`caught_up`), or with work
    /// left (counted from when it began to be left).
    pub(crate) fn turn(&self, caught_up: bool) {
        if caught_up {
            self.since_us.store(0, Ordering::Release);
        } else if self.since_us.load(Ordering::Acquire) == 0 {
            self.since_us.store(self.now_us(), Ordering::Release);
        }
    }

    /// How long the work waiting now has waited (zero when caught up).
    pub fn lagging_for(&self) -> Duration {
        match self.since_us.load(Ordering::Acquire) {
            0 => Duration::ZERO,
            since => Duration::from_micros(self.now_us().saturating_sub(since)),
        }
    }

    /// A lag that began `ago`: for tests of what follows it.
    pub fn lagging_since(ago: Duration) -> Self {
        let lag = Lag {
            since_us: AtomicU64::new(0),
            epoch: Instant::now()
                .checked_sub(ago)
                .expect("a test's lag within the machine's uptime"),
        };
        lag.since_us.store(1, Ordering::Release);
        lag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_first_turn_that_left_work_until_one_catches_up() {
        let lag = Lag::default();
        assert_eq!(lag.lagging_for(), Duration::ZERO);
        lag.turn(false);
        let since = lag.since_us.load(Ordering::Acquire);
        assert_ne!(since, 0);
        lag.turn(false); // still behind: counted from the first turn that left work
        assert_eq!(lag.since_us.load(Ordering::Acquire), since);
        lag.turn(true);
        assert_eq!(lag.lagging_for(), Duration::ZERO);
        let old = Lag::lagging_since(Duration::from_secs(90));
        assert!(old.lagging_for() >= Duration::from_secs(90));
    }
}
