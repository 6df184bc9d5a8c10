//! Alertmanager (`POST /api/v2/alerts`): one alert per check and series, identified by its
//! labels, firing while the level is a problem and resolved by `ok`.
//!
//! The labels are the same for every level of a series (the level is an annotation), so the
//! `ok` message resolves the very alert that `crit` started, and a change from `warn` to
//! `crit` updates it instead of starting a second one.

use serde_json::{Map, Value, json};
use time::Duration;

use super::{Call, SendError, Sent, format_time, parse_time};
use crate::notification::Notification;
use crate::notification::value_text;

/// How long a firing alert lasts unless it is sent again. Insights re-sends a lasting problem
/// within an hour; without `endsAt`, Alertmanager would resolve the alert by itself after its
/// `resolve_timeout` (5 minutes by default) although the problem lasts.
pub(super) const FIRING_FOR: Duration = Duration::hours(2);
/// A test alert expires by itself.
pub(super) const TEST_FIRING_FOR: Duration = Duration::minutes(5);

pub(super) async fn send(call: &Call<'_>, url: &str, n: &Notification) -> Result<Sent, SendError> {
    let target = format!("{}/api/v2/alerts", url.trim_end_matches('/'));
    call.deliver(call.client.post(target).json(&body(n))).await
}

pub(super) fn body(n: &Notification) -> Value {
    let status_time = parse_time(&n.status_time);
    let ends_at = if !n.level.is_problem() {
        // An end in the past (or now) resolves the alert.
        status_time
    } else if n.test {
        status_time + TEST_FIRING_FOR
    } else {
        status_time + FIRING_FOR
    };
    // Alertmanager refuses an alert that ends before it starts.
    let starts_at = parse_time(&n.since).min(ends_at);
    let mut annotations = Map::new();
    annotations.insert("summary".into(), json!(n.message));
    annotations.insert("level".into(), json!(n.level));
    annotations.insert("previous_level".into(), json!(n.previous_level));
    annotations.insert("value".into(), json!(value_text(n.value)));
    if let Some(r) = &n.rule_name {
        annotations.insert("rule".into(), json!(r));
    }
    if n.test {
        annotations.insert("test".into(), json!("true"));
    }
    json!([{
        "labels": labels(n),
        "annotations": annotations,
        "startsAt": format_time(starts_at),
        "endsAt": format_time(ends_at),
    }])
}

/// The notification's labels with each name made a valid Prometheus label name
/// (`[a-zA-Z_][a-zA-Z0-9_]*`): a check's tag keys may hold `-` and `.`, which Alertmanager
/// refuses; they become `_`. The mapping is fixed, so firing and resolving agree.
pub(super) fn labels(n: &Notification) -> Map<String, Value> {
    n.labels()
        .into_iter()
        .map(|(k, v)| (label_name(&k), Value::String(v)))
        .collect()
}

fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_keys_become_label_names() {
        assert_eq!(label_name("team-name.x"), "team_name_x");
        assert_eq!(label_name("1st"), "_1st");
        assert_eq!(label_name("ok_1"), "ok_1");
    }
}
