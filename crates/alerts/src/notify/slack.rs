//! Slack incoming webhooks: the attachment InfluxDB 2 sends, colored by level.

use serde_json::{Value, json};

use super::{Call, SendError, Sent};
use crate::level::Level;
use crate::notification::Notification;

pub(super) async fn send(
    call: &Call<'_>,
    url: &str,
    channel: Option<&str>,
    n: &Notification,
) -> Result<Sent, SendError> {
    call.deliver(call.client.post(url).json(&body(channel, n)))
        .await
}

/// `{"channel"?, "attachments": [{"color", "text", "mrkdwn_in": ["text"]}]}`.
pub(super) fn body(channel: Option<&str>, n: &Notification) -> Value {
    let mut body = json!({
        "attachments": [{
            "color": color(n.level),
            "text": escape(&n.message),
            "mrkdwn_in": ["text"],
        }],
    });
    if let Some(c) = channel {
        body["channel"] = json!(c);
    }
    body
}

pub(super) fn color(level: Level) -> &'static str {
    match level {
        Level::Crit => "danger",
        Level::Warn => "warning",
        Level::Info | Level::Ok => "good",
    }
}

/// Slack reads `<…>` as a link or a mention and `&` as the start of an entity, so a message
/// such as "risk_score < 0.5" must have them escaped to be shown as written (Slack's
/// "Escaping text" rules; `>` alone is harmless but escaped alike).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_characters_are_escaped() {
        assert_eq!(escape("a < 0.5 & b > 1"), "a &lt; 0.5 &amp; b &gt; 1");
    }
}
