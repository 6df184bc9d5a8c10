//! Where background work runs: delivery's dispatcher and sinks (SQLite, the series store, the
//! spool), the Kafka producer thread, the series store's checkpoints and alerting all run on
//! threads whose CPU priority is lowered (nice 10), so that on a busy machine they never
//! compete with the request path on equal terms.
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

use thread_priority::{ThreadPriority, ThreadPriorityValue, set_current_thread_priority};

/// The niceness background threads get.
pub const BACKGROUND_NICE: i32 = 10;

/// Whether background work runs at a lower priority (`ServerConfig::background_priority`);
/// off, it runs at the same priority as the request path (the benchmark's baseline).
fn lower_current_thread() {
    // Crossplatform priorities 0..=99 map onto niceness 19..=-20 for the normal policy.
    let value = ((19 - BACKGROUND_NICE) * 99 / 39) as u8;
    let priority = ThreadPriorityValue::try_from(value).expect("within 0..=99");
    if let Err(e) = set_current_thread_priority(ThreadPriority::Crossplatform(priority)) {
        tracing::warn!(error = ?e, "cannot lower a background thread's CPU priority; it competes with calls on equal terms");
    }
}

/// A tokio runtime for background tasks (one worker thread and its blocking pool, all at the
/// lower priority). Dropped in an async context without blocking.
pub struct BackgroundRuntime(Option<tokio::runtime::Runtime>);

impl BackgroundRuntime {
    pub fn new(lower_priority: bool) -> std::io::Result<Self> {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(1)
            .thread_name("insights-background")
            .enable_all();
        if lower_priority {
            b.on_thread_start(lower_current_thread);
        }
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
pub fn on_background_thread<T: Send>(lower_priority: bool, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            if lower_priority {
                lower_current_thread();
            }
            f()
        })
        .join()
        .expect("background start panicked")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_current_thread() -> i32 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // Field 19 (nice), counted after the command name's closing parenthesis.
        stat.rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .nth(16)
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn background_threads_run_at_nice_10_and_their_children_too() {
        let (own, child) = on_background_thread(true, || {
            let own = nice_of_current_thread();
            let child = std::thread::spawn(nice_of_current_thread).join().unwrap();
            (own, child)
        });
        assert_eq!((own, child), (BACKGROUND_NICE, BACKGROUND_NICE));
        let rt = BackgroundRuntime::new(true).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        rt.handle().spawn(async move {
            tx.send(nice_of_current_thread()).unwrap();
        });
        assert_eq!(rx.recv().unwrap(), BACKGROUND_NICE);
        let blocking = std::sync::mpsc::channel();
        let t = blocking.0;
        rt.handle()
            .spawn_blocking(move || t.send(nice_of_current_thread()).unwrap());
        assert_eq!(blocking.1.recv().unwrap(), BACKGROUND_NICE);
        assert_eq!(
            nice_of_current_thread(),
            0,
            "the caller's thread is untouched"
        );
    }
}
