//! Email over SMTP: plain SMTP, STARTTLS (required, never skipped) or implicit TLS, with
//! credentials when they are set; a plain-text message with the notification's fields.

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{SendError, Sent, TOTAL_TIMEOUT, cause, tls_failure};
use crate::endpoint::TlsMode;
use crate::notification::Notification;
use crate::notification::value_text;

pub(super) struct Server<'a> {
    pub(super) host: &'a str,
    pub(super) port: u16,
    pub(super) tls: TlsMode,
    pub(super) username: Option<&'a str>,
    pub(super) password: Option<&'a str>,
}

pub(super) async fn send(
    server: &Server<'_>,
    from: &str,
    to: &[String],
    n: &Notification,
) -> Result<Sent, SendError> {
    let message = message(from, to, n)?;
    let builder = match server.tls {
        TlsMode::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server.host),
        TlsMode::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(server.host)
            .map_err(|e| SendError::give_up(format!("TLS cannot be set up: {}", cause(&e))))?,
        TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(server.host)
            .map_err(|e| SendError::give_up(format!("TLS cannot be set up: {}", cause(&e))))?,
    };
    let mut builder = builder.port(server.port).timeout(Some(TOTAL_TIMEOUT));
    if let Some(user) = server.username {
        builder = builder.credentials(Credentials::new(
            user.to_string(),
            server.password.unwrap_or_default().to_string(),
        ));
    }
    let transport = builder.build();
    // lettre's timeout is per read or write; this one bounds the whole conversation.
    match tokio::time::timeout(TOTAL_TIMEOUT, transport.send(message)).await {
        Err(_) => Err(SendError::retry(format!(
            "timed out after {} s",
            TOTAL_TIMEOUT.as_secs()
        ))),
        Ok(Ok(_)) => Ok(Sent { status: None }),
        Ok(Err(e)) => Err(from_smtp(&e)),
    }
}

/// The error for a failed SMTP conversation: a transient (4xx) reply or no conversation at
/// all is worth another try, a permanent (5xx) reply is not; nor is a TLS failure (a
/// certificate that does not verify, a server without STARTTLS), which needs the endpoint or
/// the server changed.
fn from_smtp(e: &lettre::transport::smtp::Error) -> SendError {
    if e.is_permanent() {
        SendError::give_up(format!("refused by the SMTP server: {e}"))
    } else if e.is_transient() {
        SendError::retry(format!("deferred by the SMTP server: {e}"))
    } else if e.is_timeout() {
        SendError::retry(format!("timed out after {} s", TOTAL_TIMEOUT.as_secs()))
    } else if let Some(words) = tls_failure(e) {
        SendError::give_up(words)
    } else if e.is_tls() {
        SendError::give_up(format!("TLS failed: {}", cause(e)))
    } else if e.is_client() {
        SendError::give_up(format!("the message cannot be sent: {}", cause(e)))
    } else {
        SendError::retry(format!("unreachable: {}", cause(e)))
    }
}

/// `[CRIT] Risk score high: owner/name 1.0.0` (`[TEST] ` before it for a test).
pub(super) fn subject(n: &Notification) -> String {
    format!(
        "{}[{}] {}: {} {}",
        if n.test { "[TEST] " } else { "" },
        n.level.as_str().to_ascii_uppercase(),
        n.check_name,
        n.algorithm,
        n.version
    )
}

/// The message, then one line per field.
pub(super) fn text(n: &Notification) -> String {
    let mut lines = vec![n.message.clone(), String::new()];
    let mut field = |name: &str, value: String| lines.push(format!("{name:<15}{value}"));
    field("Check:", format!("{} (id {})", n.check_name, n.check_id));
    field("Level:", format!("{} (was {})", n.level, n.previous_level));
    field("Value:", value_text(n.value));
    field(
        "Metric:",
        n.metric
            .clone()
            .unwrap_or_else(|| "none (deadman)".to_string()),
    );
    field("Algorithm:", format!("{} {}", n.algorithm, n.version));
    field("Since:", n.since.clone());
    field("Checked at:", n.status_time.clone());
    field("Window end:", n.source_time.clone());
    if let Some(r) = &n.rule_name {
        field(
            "Rule:",
            format!("{r} (id {})", n.rule_id.as_deref().unwrap_or("")),
        );
    }
    let tags: Vec<String> = n.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    field(
        "Tags:",
        if tags.is_empty() {
            "none".to_string()
        } else {
            tags.join(", ")
        },
    );
    field("Notification:", n.id.clone());
    if n.test {
        lines.push(String::new());
        lines.push("This is a test notification: no check changed level.".to_string());
    }
    lines.join("\n") + "\n"
}

fn message(from: &str, to: &[String], n: &Notification) -> Result<Message, SendError> {
    let from: Mailbox = from
        .parse()
        .map_err(|_| SendError::give_up(format!("the from address {from:?} is not valid")))?;
    // A stable Message-ID: a retried notification is recognisably the same message.
    let id: String =
        n.id.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
    let mut builder = Message::builder()
        .from(from)
        .subject(subject(n))
        .message_id(Some(format!("<{id}@insights>")))
        .header(ContentType::TEXT_PLAIN);
    for t in to {
        let mailbox: Mailbox = t
            .parse()
            .map_err(|_| SendError::give_up(format!("the to address {t:?} is not valid")))?;
        builder = builder.to(mailbox);
    }
    builder
        .body(text(n))
        .map_err(|e| SendError::give_up(format!("the message cannot be built: {e}")))
}
