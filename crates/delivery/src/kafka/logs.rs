//! The delivery thread's warnings, said once and then summarised: while the brokers are away,
//! librdkafka reports a failure for every reconnection attempt of every broker, and the same
//! failure (the same cause, in messages that differ only in an address or a count) would fill
//! the log. Each kind of warning is logged the first time, then at most once per interval with
//! the number of repeats and the latest message; a new kind is logged at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tracing::Level;

/// What to log: the message of the latest occurrence, and how many occurrences of that kind were
/// not logged since its previous line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) key: String,
    pub(crate) level: Level,
    /// What happened, for a person.
    pub(crate) what: &'static str,
    pub(crate) error: String,
    pub(crate) repeated: u64,
}

impl Line {
    pub(crate) fn log(&self) {
        let (key, error, repeated) = (self.key.as_str(), self.error.as_str(), self.repeated);
        match self.level {
            Level::ERROR => tracing::error!(kind = key, error, repeated, "{}", self.what),
            Level::WARN => tracing::warn!(kind = key, error, repeated, "{}", self.what),
            _ => tracing::info!(kind = key, error, repeated, "{}", self.what),
        }
    }
}

struct Seen {
    logged_at: Instant,
    level: Level,
    what: &'static str,
    repeated: u64,
    latest: String,
}

pub(crate) struct Limiter {
    interval: Duration,
    seen: HashMap<String, Seen>,
}

impl Limiter {
    pub(crate) fn new(interval: Duration) -> Limiter {
        Limiter {
            interval,
            seen: HashMap::new(),
        }
    }

    /// An occurrence of `key`: the line to log now, if any. The keys are kinds of failure (a
    /// bounded set), not messages.
    pub(crate) fn offer(
        &mut self,
        key: &str,
        level: Level,
        what: &'static str,
        error: &str,
        now: Instant,
    ) -> Option<Line> {
        let line = |repeated| Line {
            key: key.to_string(),
            level,
            what,
            error: error.to_string(),
            repeated,
        };
        match self.seen.get_mut(key) {
            None => {
                self.seen.insert(
                    key.to_string(),
                    Seen {
                        logged_at: now,
                        level,
                        what,
                        repeated: 0,
                        latest: String::new(),
                    },
                );
                Some(line(0))
            }
            Some(seen) if now.duration_since(seen.logged_at) >= self.interval => {
                seen.logged_at = now;
                seen.latest.clear();
                Some(line(std::mem::take(&mut seen.repeated)))
            }
            Some(seen) => {
                seen.repeated += 1;
                error.clone_into(&mut seen.latest);
                None
            }
        }
    }

    /// The summaries due: kinds that repeated since their last line, an interval ago or more.
    /// Called regularly, so that repeats are told even when no further occurrence comes.
    pub(crate) fn due(&mut self, now: Instant) -> Vec<Line> {
        let mut lines = Vec::new();
        for (key, seen) in &mut self.seen {
            if seen.repeated > 0 && now.duration_since(seen.logged_at) >= self.interval {
                seen.logged_at = now;
                lines.push(Line {
                    key: key.clone(),
                    level: seen.level,
                    what: seen.what,
                    error: std::mem::take(&mut seen.latest),
                    repeated: std::mem::take(&mut seen.repeated),
                });
            }
        }
        lines
    }

    /// Whether some kind repeated since its last line (a summary will be due).
    pub(crate) fn has_pending(&self) -> bool {
        self.seen.values().any(|s| s.repeated > 0)
    }

    /// A new connection: what was said about the previous one is no reason to keep quiet.
    pub(crate) fn forget(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHAT: &str = "Kafka connection problem";

    fn offer(l: &mut Limiter, key: &str, error: &str, now: Instant) -> Option<Line> {
        l.offer(key, Level::WARN, WHAT, error, now)
    }

    #[test]
    fn a_repeated_warning_is_said_once_then_summarised_once_per_interval() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut l = Limiter::new(Duration::from_secs(30));
        let first = offer(&mut l, "unreachable", "127.0.0.1:1: refused", at(0)).unwrap();
        assert_eq!(
            (first.repeated, first.error.as_str(), first.what),
            (0, "127.0.0.1:1: refused", WHAT)
        );
        // Six a second for ten seconds: nothing more.
        for i in 1..=60 {
            let error = format!("[::1]:1 refused {i}");
            assert_eq!(offer(&mut l, "unreachable", &error, at(i * 166)), None);
        }
        assert!(l.due(at(10_000)).is_empty());
        // Another kind is said at once.
        assert!(offer(&mut l, "authentication_failed", "invalid-proof", at(10_000)).is_some());
        // After the interval, one summary with the count and the latest message.
        let due = l.due(at(30_000));
        assert_eq!(due.len(), 1, "{due:?}");
        assert_eq!(
            (due[0].key.as_str(), due[0].error.as_str(), due[0].repeated),
            ("unreachable", "[::1]:1 refused 60", 60)
        );
        assert!(l.due(at(31_000)).is_empty(), "nothing new to tell");
        // A repeat an interval after the last line is said at once, with the count of those
        // not said since.
        assert_eq!(offer(&mut l, "unreachable", "refused", at(40_000)), None);
        let again = offer(&mut l, "unreachable", "refused again", at(70_000)).unwrap();
        assert_eq!((again.repeated, again.error.as_str()), (1, "refused again"));
        assert!(l.due(at(200_000)).is_empty());
        // A new connection starts afresh.
        l.forget();
        assert_eq!(
            offer(&mut l, "unreachable", "x", at(70_001))
                .unwrap()
                .repeated,
            0
        );
    }
}
