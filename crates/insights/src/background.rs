//! Where background work runs: delivery's dispatcher and sinks (SQLite, the series store, the
//! spool), the Kafka producer thread, the series store's checkpoints and alerting all run on
//! threads whose CPU priority is lowered (nice 10 by default, `ServerConfig::background_nice`),
//! so that on a busy machine they never compete with the request path on equal terms.
//!
//! Linux's scheduler gives a thread at nice 10 about a tenth of the CPU a thread at nice 0 gets
//! when both want it, and everything when the request path is idle. So background work takes
//! the cores' slack; under a sustained overload it falls behind, the hand-off absorbs the
//! burst, and past the hand-off's bound payloads are dropped and counted
//! (`insights_payloads_dropped_total{reason="handoff_full"}`): the callers are served first,
//! by design.
//!
//! A thread inherits the priority of the thread that creates it, so threads that libraries
//! start (librdkafka's, the series store's) are created from a background thread
//! ([`on_background_thread`]).
//!
//! Datadog delivery runs five steps lower still ([`datadog_nice`]): when the cores are short,
//! Kafka (the pipeline the bridge and the exports read) goes first, and Datadog, whose spool
//! holds an hour, catches up once the load passes.

use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};

/// The niceness background threads get by default.
pub const BACKGROUND_NICE: u8 = 10;

/// How many steps of niceness Datadog delivery runs below the rest of the background work.
pub const DATADOG_BELOW_BACKGROUND: u8 = 5;

/// The niceness of Datadog delivery's thread when the rest of the background runs at
/// `background` (also when that is 0: Kafka goes first either way).
pub fn datadog_nice(background: u8) -> u8 {
    background.saturating_add(DATADOG_BELOW_BACKGROUND).min(19)
}

/// Sets the current thread's niceness to `nice` (1..=19; 0 leaves it as it is, the request
/// path's priority).
fn lower_current_thread(nice: u8) {
    if nice == 0 {
        return;
    }
    // thread-priority maps 0..=99 onto niceness 19..=-20, truncating: this value lands exactly
    // on `nice` (checked by the test below for the values used).
    let value = ((19 - i32::from(nice.min(19))) * 99 / 39) as u8;
    let priority = ThreadPriorityValue::try_from(value).expect("within 0..=99");
    if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(priority)) {
        tracing::warn!(error = ?e, "cannot lower a background thread's CPU priority; it competes with calls on equal terms");
    }
}

/// A tokio runtime for background tasks (one worker thread and its blocking pool, all at the
/// lower priority). Dropped in an async context without blocking.
pub struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl BackgroundRuntime {
    pub fn new(nice: u8) -> std::io::Result<Self> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(1)
            .thread_name("insights-background")
            .enable_all()
            .on_thread_start(move || lower_current_thread(nice));
        Ok(BackgroundRuntime(Some(b.build()?)))
    }

    pub fn handle(&self) -> &tokio::runtime::Handle {
        self.0.as_ref().expect("present until dropped").handle()
    }
}

impl Drop for BackgroundRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs `f` on a short-lived thread at the background priority, so that the threads it starts
/// inherit it.
pub fn on_background_thread<T: Send>(nice: u8, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            lower_current_thread(nice);
            f()
        })
        .join()
        .expect("background start panicked")
    })
}

/// The niceness in a thread's `/proc/…/stat` line (field 19, counted after the command name's
/// closing parenthesis, since the name may hold spaces): what the tests check threads with.
pub fn niceness_in_stat(stat: &str) -> Option<i32> {
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(16)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_current_thread() -> i32 {
        niceness_in_stat(&std::fs::read_to_string("/proc/thread-self/stat").unwrap()).unwrap()
    }

    #[test]
    fn background_threads_run_at_nice_10_and_their_children_too() {
        for nice in [5, 10, 19] {
            let got = on_background_thread(nice, nice_of_current_thread);
            assert_eq!(got, i32::from(nice));
        }
        let (own, child) = on_background_thread(BACKGROUND_NICE, || {
            let own = nice_of_current_thread();
            let child = std::thread::spawn(nice_of_current_thread).join().unwrap();
            (own, child)
        });
        let want = i32::from(BACKGROUND_NICE);
        assert_eq!((own, child), (want, want));
        let rt = BackgroundRuntime::new(BACKGROUND_NICE).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            tx.send(nice_of_current_thread()).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), want);
        let blocking = std::sync::mpsc::channel();
        let t = blocking.0;
        rt.handle()
            .spawn_blocking(move || t.send(nice_of_current_thread()).unwrap());
        assert_eq!(blocking.1.recv().unwrap(), want);
        assert_eq!(
            nice_of_current_thread(),
            0,
            "the caller's thread is untouched"
        );
    }
}
