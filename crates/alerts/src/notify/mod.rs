//! Sending one notification to one endpoint, in that endpoint's format, and saying in words
//! what became of it.
//!
//! Every kind has the same shape: a module with a pure `body` (or message) builder, which
//! the tests read field by field, and a `send` that hands it to the receiver. What comes back
//! is either [`Sent`] (the receiver accepted it) or a [`SendError`] that says whether trying
//! again could help (the outbox's decision) and, in words a person can act on, what happened
//! (the history's "last error", the verdict of `POST …/{id}/test`).
//!
//! **Invariant:** no secret (a webhook URL, a routing key, a token, a password, a header
//! value) is ever in a [`SendError`]'s words. reqwest's errors carry the URL, so it is
//! stripped; and every secret of the endpoint is scrubbed from the words as well, in case a
//! receiver echoes it in its answer.

mod alertmanager;
mod email;
mod http;
mod pagerduty;
mod slack;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::endpoint::{Endpoint, EndpointKind, HttpAuth, kind_name};
use crate::level::Level;
use crate::notification::{Notification, dedup_key};

/// How long a receiver has to accept the connection.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one delivery may take in all (connect, send, the receiver's answer).
pub(crate) const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of a refusing receiver's answer is kept in the words.
const BODY_EXCERPT_CHARS: usize = 200;
/// How much of a refusing receiver's answer is read (and scrubbed) to make the excerpt.
const MAX_BODY_READ: usize = 16 * 1024;

/// Sends notifications; one per process is enough (its HTTP client keeps connections).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
}

/// The receiver accepted the notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The HTTP status of the answer; `None` for SMTP.
    pub status: Option<u16>,
}

/// The notification was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{words}")]
pub struct SendError {
    /// Whether trying again later could succeed: network errors, timeouts, HTTP 408, 429 and
    /// 5xx, SMTP transient (4xx) replies. Not for other 4xx, SMTP permanent (5xx) replies, a
    /// TLS handshake that fails (a certificate that does not verify), or an endpoint that
    /// cannot be used as configured.
    pub retry: bool,
    /// What the receiver asked for with `Retry-After` (seconds or an HTTP date) on 429 / 503.
    pub retry_after: Option<Duration>,
    /// What happened, for a person: "unreachable: connection refused", "refused with status
    /// 400: …", "timed out after 15 s". Never contains a secret.
    pub words: String,
}

impl SendError {
    fn retry(words: impl Into<String>) -> SendError {
        SendError {
            retry: true,
            retry_after: None,
            words: words.into(),
        }
    }

    fn give_up(words: impl Into<String>) -> SendError {
        SendError {
            retry: false,
            retry_after: None,
            words: words.into(),
        }
    }

    /// Replaces every secret in the words with `…`.
    fn scrubbed(mut self, secrets: &[String]) -> SendError {
        self.words = scrub(&self.words, secrets);
        self
    }
}

impl Sent {
    /// The words for `POST …/{id}/test`: "accepted (HTTP 202)", "refused with status 403: …",
    /// "unreachable: connection refused".
    pub fn verdict(result: &Result<Sent, SendError>) -> String {
        match result {
            Ok(Sent { status: Some(s) }) => format!("accepted (HTTP {s})"),
            Ok(Sent { status: None }) => "accepted by the SMTP server".to_string(),
            Err(e) => e.words.clone(),
        }
    }
}

impl Default for Sender {
    fn default() -> Self {
        Sender::new()
    }
}

impl Sender {
    pub fn new() -> Sender {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            // A webhook that redirects is misconfigured, and following it could send the
            // notification (and its auth header) somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("insights-alerts/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds: a TLS backend is available");
        Sender { client }
    }

    /// Sends `n` to `endpoint`: `Ok` when the receiver accepted it.
    pub async fn send(&self, endpoint: &Endpoint, n: &Notification) -> Result<Sent, SendError> {
        let secrets = secrets_of(&endpoint.kind);
        let call = Call {
            client: &self.client,
            secrets: &secrets,
        };
        let result = match &endpoint.kind {
            EndpointKind::Slack { url, channel } => {
                slack::send(&call, url.expose(), channel.as_deref(), n).await
            }
            EndpointKind::PagerDuty {
                routing_key,
                url,
                client_url,
            } => pagerduty::send(&call, url, routing_key.expose(), client_url.as_deref(), n).await,
            EndpointKind::Http {
                url,
                method,
                headers,
                auth,
                body_template,
            } => {
                let target = http::Target {
                    url: url.expose(),
                    method: *method,
                    headers,
                    auth,
                    body_template: body_template.as_ref(),
                };
                http::send(&call, &target, n).await
            }
            EndpointKind::Email {
                host,
                port,
                tls,
                username,
                password,
                from,
                to,
            } => {
                let server = email::Server {
                    host,
                    port: *port,
                    tls: *tls,
                    username: username.as_deref(),
                    password: password.as_ref().map(|p| p.expose()),
                };
                email::send(&server, from, to, n).await
            }
            EndpointKind::Alertmanager { url } => alertmanager::send(&call, url, n).await,
        };
        result.map_err(|e| e.scrubbed(&secrets))
    }
}

/// One send: the client, and the endpoint's secrets, which are scrubbed from a refusing
/// receiver's answer before it is cut to its excerpt (so no part of a secret survives the
/// cut).
struct Call<'a> {
    client: &'a reqwest::Client,
    secrets: &'a [String],
}

impl Call<'_> {
    /// POSTs (or PUTs, PATCHes) a prepared request and classifies the answer.
    async fn deliver(&self, request: reqwest::RequestBuilder) -> Result<Sent, SendError> {
        let mut response = request.send().await.map_err(from_reqwest)?;
        let status = response.status();
        if status.is_success() {
            return Ok(Sent {
                status: Some(status.as_u16()),
            });
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        // Only the beginning of the answer is read, so a huge error page is not read whole.
        let mut body = Vec::new();
        while body.len() < MAX_BODY_READ {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        let body = scrub(&String::from_utf8_lossy(&body), self.secrets);
        Err(refused(status.as_u16(), retry_after, &body))
    }
}

/// The error for an HTTP answer that is not a success.
fn refused(status: u16, retry_after: Option<Duration>, body: &str) -> SendError {
    let retry = matches!(status, 408 | 429 | 500..=599);
    let excerpt: String = body.trim().chars().take(BODY_EXCERPT_CHARS).collect();
    let mut words = format!("refused with status {status}");
    if (300..400).contains(&status) {
        words.push_str(" (a redirect; redirects are not followed: configure the final URL)");
    }
    if !excerpt.is_empty() {
        words.push_str(": ");
        words.extend(excerpt.chars().flat_map(char::escape_debug));
    }
    SendError {
        retry,
        retry_after: if matches!(status, 429 | 503) {
            retry_after
        } else {
            None
        },
        words,
    }
}

/// `Retry-After: 7` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT` (a date in the past is
/// "now").
fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The error for a request that got no answer.
fn from_reqwest(e: reqwest::Error) -> SendError {
    // The URL may be the secret (a Slack webhook); it never goes into the words.
    let e = e.without_url();
    if e.is_timeout() {
        if e.is_connect() {
            return SendError::retry(format!(
                "unreachable: no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ));
        }
        return SendError::retry(format!("timed out after {} s", TOTAL_TIMEOUT.as_secs()));
    }
    if let Some(words) = tls_failure(&e) {
        return SendError::give_up(words);
    }
    if e.is_connect() {
        return SendError::retry(format!("unreachable: {}", cause(&e)));
    }
    if e.is_builder() {
        return SendError::give_up(format!("the request cannot be made: {}", cause(&e)));
    }
    SendError::retry(format!("failed: {}", cause(&e)))
}

/// "TLS failed: certificate verify failed (self-signed certificate)" if a TLS handshake is
/// what failed. Not worth another try: the receiver's certificate (or the endpoint's host,
/// port or TLS mode) must change first.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<native_tls::Error>() {
            return Some(format!("TLS failed: {}", tls_reason(&tls.to_string())));
        }
        current = err.source();
    }
    None
}

/// OpenSSL says `error:0A000086:SSL routines:tls_post_process_server_certificate:certificate
/// verify failed:../ssl/statem/statem_clnt.c:1889: (self-signed certificate)`: its reason is
/// the fifth field, the verification's result the end in parentheses.
fn tls_reason(text: &str) -> String {
    let Some(rest) = text.strip_prefix("error:") else {
        return text.to_string();
    };
    let reason = rest.split(':').nth(3).unwrap_or(rest);
    match text.rfind(" (") {
        Some(i) if text.ends_with(')') => format!("{reason}{}", &text[i..]),
        _ => reason.to_string(),
    }
}

/// The innermost reason of an error, in a person's words: an operating system error by its
/// kind ("connection refused"), anything else by its own message.
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest: &(dyn std::error::Error + 'static) = e;
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            let known = match io.kind() {
                K::ConnectionRefused => Some("connection refused"),
                K::ConnectionReset => Some("connection reset"),
                K::ConnectionAborted => Some("connection aborted"),
                K::NotConnected => Some("not connected"),
                K::TimedOut => Some("timed out"),
                K::UnexpectedEof => Some("the connection closed early"),
                K::HostUnreachable => Some("host unreachable"),
                K::NetworkUnreachable => Some("network unreachable"),
                K::AddrNotAvailable => Some("address not available"),
                _ => None,
            };
            if let Some(k) = known {
                return k.to_string();
            }
        }
        deepest = err;
        current = err.source();
    }
    let text = deepest.to_string();
    // "… (os error 111)" says nothing more to a person.
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// Every secret of an endpoint, as it could appear in a message: the whole URL, its path and
/// query alone, and each of their longer parts (a Slack webhook's secret is its last path
/// segments; a token is often one query value). Scrubbing a harmless word too is no loss.
fn secrets_of(kind: &EndpointKind) -> Vec<String> {
    const PART: usize = 8;
    let mut out = Vec::new();
    let mut url = |u: &str| {
        out.push(u.to_string());
        if let Ok(parsed) = reqwest::Url::parse(u) {
            if parsed.path().len() > 1 {
                out.push(parsed.path().to_string());
            }
            if let Some(q) = parsed.query() {
                out.push(q.to_string());
            }
            let segments = parsed.path().split('/');
            let values = parsed.query().unwrap_or("").split('&').flat_map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or(("", kv));
                [kv, k, v]
            });
            out.extend(
                segments
                    .chain(values)
                    .filter(|p| p.len() >= PART)
                    .map(str::to_string),
            );
        }
    };
    match kind {
        EndpointKind::Slack { url: u, .. } => url(u.expose()),
        EndpointKind::Http {
            url: u,
            headers,
            auth,
            ..
        } => {
            url(u.expose());
            out.extend(headers.values().map(|h| h.expose().to_string()));
            match auth {
                HttpAuth::None => {}
                HttpAuth::Basic { password, .. } => out.push(password.expose().to_string()),
                HttpAuth::Bearer { token } => out.push(token.expose().to_string()),
            }
        }
        EndpointKind::PagerDuty { routing_key, .. } => out.push(routing_key.expose().to_string()),
        EndpointKind::Email { password, .. } => {
            out.extend(password.iter().map(|p| p.expose().to_string()))
        }
        EndpointKind::Alertmanager { .. } => {}
    }
    // Longest first, so that the whole URL goes before its path does.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out.retain(|s| s.len() >= 3);
    out
}

fn scrub(words: &str, secrets: &[String]) -> String {
    let mut out = words.to_string();
    for s in secrets {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "…");
        }
    }
    out
}

/// An RFC 3339 time of the notification, or now if it does not parse (it was made by us).
fn parse_time(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap_or_else(|_| OffsetDateTime::now_utc())
}

fn format_time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .expect("an OffsetDateTime formats as RFC 3339")
}

/// A clearly marked test message for `endpoint`, as `POST …/{id}/test` sends it.
///
/// Its level is `info` (a problem level, so every kind shows it the way it shows a real
/// alert, but the least urgent one: a test should not wake anybody up), its check is
/// "Insights test notification" with the id `test` (so it never shares an Alertmanager alert
/// or a PagerDuty incident with a real check), and its dedup key is its own for every test
/// (a function of the endpoint and the time). How each kind keeps a test from lasting:
/// PagerDuty gets a `resolve` right after the `trigger` is accepted; Alertmanager gets an
/// `endsAt` five minutes after it.
pub fn test_notification(endpoint: &Endpoint, now: OffsetDateTime) -> Notification {
    let at = format_time(now);
    Notification {
        id: format!("test-{}", uuid::Uuid::new_v4()),
        test: true,
        check_id: "test".to_string(),
        check_name: TEST_CHECK_NAME.to_string(),
        rule_id: None,
        rule_name: None,
        algorithm: "insights/test".to_string(),
        version: "0.0.0".to_string(),
        metric: Some("test".to_string()),
        level: Level::Info,
        previous_level: Level::Ok,
        value: None,
        message: format!(
            "This is a test notification from Insights to the {} endpoint \"{}\", sent at {at}. \
             No check changed level: nothing needs doing.",
            kind_name(&endpoint.kind),
            endpoint.name,
        ),
        tags: BTreeMap::from([("test".to_string(), "true".to_string())]),
        source_time: at.clone(),
        status_time: at.clone(),
        since: at.clone(),
        dedup_key: dedup_key(&format!("test/{}", endpoint.id), "insights/test", &at),
    }
}

pub(crate) const TEST_CHECK_NAME: &str = "Insights test notification";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let in_a_minute = httpdate::fmt_http_date(now + Duration::from_secs(60));
        assert_eq!(
            parse_retry_after(&in_a_minute, now),
            Some(Duration::from_secs(60))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_are_classified() {
        for (status, retry) in [
            (500, true),
            (502, true),
            (503, true),
            (408, true),
            (429, true),
            (400, false),
            (401, false),
            (403, false),
            (404, false),
            (301, false),
        ] {
            let e = refused(status, Some(Duration::from_secs(3)), "");
            assert_eq!(e.retry, retry, "{status}");
            assert_eq!(e.words, {
                let mut w = format!("refused with status {status}");
                if status == 301 {
                    w.push_str(
                        " (a redirect; redirects are not followed: configure the final URL)",
                    );
                }
                w
            });
            // Retry-After only means something on 429 and 503.
            assert_eq!(
                e.retry_after.is_some(),
                matches!(status, 429 | 503),
                "{status}"
            );
        }
    }

    #[test]
    fn a_refusal_keeps_200_characters_of_the_answer_escaped() {
        let body = format!("bad \"field\"\n{}", "é".repeat(300));
        let e = refused(400, None, &body);
        assert!(
            e.words
                .starts_with("refused with status 400: bad \\\"field\\\"\\n"),
            "{}",
            e.words
        );
        assert_eq!(e.words.matches('é').count(), 200 - "bad \"field\"\n".len());
    }

    #[test]
    fn secrets_are_scrubbed_longest_first() {
        let secrets = vec![
            "https://hooks.example/T/B/SECRET?k=v".to_string(),
            "/T/B/SECRET".to_string(),
            "k=v".to_string(),
        ];
        assert_eq!(
            scrub(
                "at https://hooks.example/T/B/SECRET?k=v and /T/B/SECRET",
                &secrets
            ),
            "at … and …"
        );
    }

    #[test]
    fn openssl_reasons_are_made_readable() {
        assert_eq!(
            tls_reason(
                "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate \
                 verify failed:../ssl/statem/statem_clnt.c:1889: (self-signed certificate)"
            ),
            "certificate verify failed (self-signed certificate)"
        );
        assert_eq!(tls_reason("handshake failed"), "handshake failed");
    }

    #[test]
    fn io_errors_are_named_by_kind() {
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(cause(&e), "connection refused");
        let e = std::io::Error::other("failed to lookup address (os error 2)");
        assert_eq!(cause(&e), "failed to lookup address");
    }
}
