//! PagerDuty Events API v2: `trigger` on a problem level, `resolve` on `ok`, one incident per
//! check and series through the notification's `dedup_key`.

use serde_json::{Value, json};

use super::{Call, SendError, Sent};
use crate::level::Level;
use crate::notification::Notification;

/// PagerDuty refuses a longer summary.
pub(super) const MAX_SUMMARY_CHARS: usize = 1024;

pub(super) async fn send(
    call: &Call<'_>,
    url: &str,
    routing_key: &str,
    client_url: Option<&str>,
    n: &Notification,
) -> Result<Sent, SendError> {
    let action = if n.level.is_problem() {
        "trigger"
    } else {
        "resolve"
    };
    let sent = call
        .deliver(
            call.client
                .post(url)
                .json(&body(routing_key, client_url, action, n)),
        )
        .await?;
    if n.test && action == "trigger" {
        // A test must not leave an incident open: its dedup key is its own (never a real
        // check's), and it is resolved as soon as it was accepted. The person who pressed
        // Test sees it open and close.
        let resolved = call
            .deliver(
                call.client
                    .post(url)
                    .json(&body(routing_key, client_url, "resolve", n)),
            )
            .await;
        if let Err(e) = resolved {
            return Err(SendError {
                words: format!(
                    "accepted (HTTP {}), but resolving the test incident failed ({}): \
                     resolve it in PagerDuty",
                    sent.status.unwrap_or_default(),
                    e.words
                ),
                ..e
            });
        }
    }
    Ok(sent)
}

pub(super) fn body(
    routing_key: &str,
    client_url: Option<&str>,
    action: &str,
    n: &Notification,
) -> Value {
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": summary(&n.message),
            "source": format!("{} {}", n.algorithm, n.version),
            "severity": severity(n.level),
            "timestamp": n.status_time,
            "component": n.algorithm,
            "group": n.check_name,
            "class": n.metric.as_deref().unwrap_or("deadman"),
            "custom_details": {
                "level": n.level,
                "previous_level": n.previous_level,
                "value": n.value,
                "tags": n.tags,
                "check_id": n.check_id,
                "rule": n.rule_name,
                "test": n.test,
            },
        },
        "client": "Insights",
    });
    if let Some(c) = client_url {
        body["client_url"] = json!(c);
    }
    body
}

pub(super) fn severity(level: Level) -> &'static str {
    match level {
        Level::Crit => "critical",
        Level::Warn => "warning",
        Level::Info | Level::Ok => "info",
    }
}

/// The message, cut to PagerDuty's limit at a character boundary.
fn summary(message: &str) -> String {
    message.chars().take(MAX_SUMMARY_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_cut_at_1024_characters_not_bytes() {
        let long = "é".repeat(2000);
        let s = summary(&long);
        assert_eq!(s.chars().count(), 1024);
        assert_eq!(s.len(), 2048);
        assert_eq!(summary("short"), "short");
    }
}
