//! The outbox: every notification is a row of the alerts database before anything is sent,
//! written in the same transaction as the status change that caused it, so a crash or a
//! restart between the change and its delivery loses nothing and sends nothing twice.
//!
//! **Order.** Notifications of one series to one endpoint go out in the order they were made
//! (a PagerDuty `resolve` never overtakes its `trigger`): the next one waits until the one
//! before it was sent or dropped. Different series and endpoints do not wait for each other.
//!
//! **Retries.** A notification is tried until it is accepted or its delivery window (default
//! one hour) has passed, with exponential backoff from 1 s to 5 min with jitter, or the
//! receiver's `Retry-After`. A refusal that cannot succeed later (a 4xx other than 408 and 429,
//! an SMTP permanent error) drops it at once. Every drop is recorded with its reason and
//! counted (`insights_alert_notifications_total{endpoint_kind, outcome}`).
//!
//! **Bounds.** At most `max_pending` notifications wait; past that a new one is recorded as
//! dropped (`outbox_full`) rather than grow the database without end. Finished rows are kept
//! for the history up to `max_history`, the oldest deleted first.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Transaction, params};

use crate::alerts::{Alerts, UNREADABLE_KIND};
use crate::db::Table;
use crate::error::Result;
use crate::notification::Notification;
use crate::notify::SendError;

/// How many notifications are sent at once.
const CONCURRENCY: usize = 8;

pub(crate) fn enqueue(
    tx: &Transaction<'_>,
    n: &Notification,
    (endpoint_id, endpoint_kind): (&str, &'static str),
    now_us: i64,
    suppressed: bool,
    max_pending: usize,
) -> Result<()> {
    let pending: i64 = tx.query_row(
        "SELECT count(*) FROM notifications WHERE state = 'pending'",
        [],
        |r| r.get(0),
    )?;
    let max_pending = max_pending as i64;
    let (state, error) = if suppressed {
        (
            "suppressed",
            Some("the rule's limit was reached".to_string()),
        )
    } else if pending >= max_pending {
        (
            "dropped",
            Some(format!(
                "outbox_full: {pending} notifications were waiting already"
            )),
        )
    } else {
        ("pending", None)
    };
    tx.execute(
        "INSERT INTO notifications (id, rule_id, endpoint_id, endpoint_kind, check_id, order_key, created_us, doc, state, next_attempt_us, last_error, done_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?7, ?10, ?11)",
        params![
            n.id,
            n.rule_id,
            endpoint_id,
            endpoint_kind,
            n.check_id,
            n.dedup_key,
            now_us,
            serde_json::to_string(n).expect("notifications serialize"),
            state,
            error,
            (state != "pending").then_some(now_us),
        ],
    )?;
    if state != "pending" {
        let outcome = if suppressed { "suppressed" } else { "dropped" };
        metrics::counter!("insights_alert_notifications_total", "endpoint_kind" => endpoint_kind, "outcome" => outcome)
            .increment(1);
    }
    Ok(())
}

struct Due {
    seq: i64,
    endpoint_id: String,
    created_us: i64,
    attempts: i64,
    notification: Notification,
}

impl Alerts {
    /// Sends what is due, until `shutdown`; wakes when a notification is made.
    pub(crate) async fn run_outbox(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            let wait = match self.deliver_due().await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "the alerts outbox cannot read its database; trying again in 5 s");
                    Some(Duration::from_secs(5))
                }
            };
            let wait = wait.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake_outbox.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One pass of the outbox: sends every notification that is due (and whose predecessor
    /// for the same series and endpoint is done), again until none is; answers how long until
    /// the next one is due. The running outbox calls it; tests call it with their clock.
    pub async fn deliver_due(self: &Arc<Self>) -> Result<Option<Duration>> {
        loop {
            let now_us = self.now_us();
            let this = self.clone();
            let due = tokio::task::spawn_blocking(move || this.due(now_us, CONCURRENCY as i64))
                .await
                .map_err(|e| crate::AlertError::Internal(e.to_string()))??;
            if due.is_empty() {
                let this = self.clone();
                return tokio::task::spawn_blocking(move || this.next_due(now_us))
                    .await
                    .map_err(|e| crate::AlertError::Internal(e.to_string()))?;
            }
            let mut tasks = tokio::task::JoinSet::new();
            for d in due {
                let this = self.clone();
                tasks.spawn(async move {
                    let loaded = this.loaded();
                    let endpoint = loaded
                        .endpoints
                        .iter()
                        .find(|e| e.id == d.endpoint_id)
                        .cloned();
                    let unreadable = loaded.unreadable(Table::Endpoints, &d.endpoint_id);
                    let (result, kind) = match (&endpoint, unreadable) {
                        (Some(e), _) => (
                            this.sender.send(e, &d.notification).await.map(|_| ()),
                            e.kind_name(),
                        ),
                        // Retried: saving the endpoint again within the window delivers it.
                        (None, Some(u)) => (
                            Err(SendError {
                                retry: true,
                                retry_after: None,
                                words: format!(
                                    "its endpoint's stored settings cannot be read ({}); save the endpoint again",
                                    u.error
                                ),
                            }),
                            UNREADABLE_KIND,
                        ),
                        (None, None) => (
                            Err(SendError {
                                retry: false,
                                retry_after: None,
                                words: "its endpoint was deleted".into(),
                            }),
                            "deleted",
                        ),
                    };
                    let this2 = this.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || this2.record(&d, kind, result)).await;
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    fn due(&self, now_us: i64, limit: i64) -> Result<Vec<Due>> {
        let conn = self.db.conn();
        let mut st = conn.prepare(
            "SELECT n.seq, n.endpoint_id, n.created_us, n.attempts, n.doc FROM notifications n
             WHERE n.state = 'pending' AND n.next_attempt_us <= ?1
               AND NOT EXISTS (SELECT 1 FROM notifications p WHERE p.state = 'pending'
                               AND p.endpoint_id = n.endpoint_id AND p.order_key = n.order_key AND p.seq < n.seq)
             ORDER BY n.seq LIMIT ?2",
        )?;
        let rows = st.query_map(params![now_us, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, endpoint_id, created_us, attempts, doc) = row?;
            match serde_json::from_str(&doc) {
                Ok(notification) => out.push(Due {
                    seq,
                    endpoint_id,
                    created_us,
                    attempts,
                    notification,
                }),
                Err(e) => {
                    conn.execute(
                        "UPDATE notifications SET state = 'dropped', last_error = ?2, done_us = ?3 WHERE seq = ?1",
                        params![seq, format!("unreadable: {e}"), now_us],
                    )?;
                }
            }
        }
        Ok(out)
    }

    fn next_due(&self, now_us: i64) -> Result<Option<Duration>> {
        let next: Option<i64> = self.db.conn().query_row(
            "SELECT min(next_attempt_us) FROM notifications WHERE state = 'pending'",
            [],
            |r| r.get(0),
        )?;
        Ok(next.map(|n| Duration::from_micros((n - now_us).max(0) as u64)))
    }

    fn record(&self, d: &Due, kind: &'static str, result: Result<(), SendError>) -> Result<()> {
        let now_us = self.now_us();
        let conn = self.db.conn();
        let attempts = d.attempts + 1;
        let counter = |outcome: &'static str| {
            metrics::counter!("insights_alert_notifications_total", "endpoint_kind" => kind, "outcome" => outcome)
                .increment(1);
        };
        match result {
            Ok(()) => {
                conn.execute(
                    "UPDATE notifications SET state = 'sent', attempts = ?2, done_us = ?3, last_error = NULL WHERE seq = ?1",
                    params![d.seq, attempts, now_us],
                )?;
                counter("sent");
            }
            Err(e) => {
                let window_end = d.created_us + self.cfg.delivery_window.as_micros() as i64;
                let backoff = backoff(attempts as u32, e.retry_after);
                let next = now_us + backoff.as_micros() as i64;
                let words = crate::error::shown(&e.words);
                if !e.retry || next > window_end {
                    let why = if e.retry {
                        format!("window_expired after {attempts} attempts; last: {words}")
                    } else {
                        format!("rejected: {words}")
                    };
                    conn.execute(
                        "UPDATE notifications SET state = 'dropped', attempts = ?2, done_us = ?3, last_error = ?4 WHERE seq = ?1",
                        params![d.seq, attempts, now_us, why],
                    )?;
                    tracing::warn!(endpoint_kind = kind, check = %crate::error::shown(&d.notification.check_name), reason = %why, "a notification was dropped");
                    counter("dropped");
                } else {
                    conn.execute(
                        "UPDATE notifications SET attempts = ?2, next_attempt_us = ?3, last_error = ?4 WHERE seq = ?1",
                        params![d.seq, attempts, next, words],
                    )?;
                    counter("retried");
                }
            }
        }
        self.prune_history(&conn)?;
        Ok(())
    }

    fn prune_history(&self, conn: &rusqlite::Connection) -> Result<()> {
        let max = self.cfg.max_history as i64;
        for (table, done) in [
            ("notifications", "state != 'pending' AND "),
            ("statuses", ""),
        ] {
            let n: i64 =
                conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
            if n > max + max / 10 {
                let cut = conn.execute(
                    &format!(
                        "DELETE FROM {table} WHERE {done}seq IN (SELECT seq FROM {table} WHERE {done}1 ORDER BY seq LIMIT ?1)"
                    ),
                    [n - max],
                )?;
                metrics::counter!("insights_alert_history_pruned_total", "table" => table)
                    .increment(cut as u64);
            }
        }
        Ok(())
    }
}

/// 1 s, 2 s, 4 s, … up to 5 min, each ±20 %; at least what the receiver asked for.
pub(crate) fn backoff(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.saturating_sub(1).min(9))
        .min(Duration::from_secs(300));
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let jitter = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 0.4 + 0.8;
    let d = base.mul_f64(jitter);
    match retry_after {
        Some(r) => d.max(r.min(Duration::from_secs(3600))),
        None => d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_five_minutes_and_honours_retry_after() {
        for (attempt, secs) in [(1u32, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (12, 300.0)] {
            let d = backoff(attempt, None).as_secs_f64();
            assert!(d >= secs * 0.8 && d <= secs * 1.2, "{attempt}: {d}");
        }
        assert!(backoff(1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }
}
