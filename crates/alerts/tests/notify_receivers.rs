//! `Sender` against receivers: every endpoint format read back field by field where it
//! arrives, and every kind of failure classified as the outbox needs it.
//!
//! - Slack, PagerDuty and HTTP: a local HTTP receiver (axum on 127.0.0.1:0) that records what
//!   it gets and answers what it is told. It stands in for Slack's and PagerDuty's servers,
//!   which cannot be reached from here; the bodies are checked against their documented
//!   formats (`shared/MONITORING.md` §2) field by field.
//! - Email: a real SMTP server, aiosmtpd, from the test venv that `scripts/test` installs
//!   (`target/test-venv`, or `INSIGHTS_TEST_VENV`), with the handler `tests/smtp_receiver.py`.
//! - Alertmanager: the real one (Debian `prometheus-alertmanager`), read back through its API.
//!
//! Every process a test starts is killed, and every temporary directory removed, when the
//! test ends, failed or not (the guards below do it on drop).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use insights_alerts::{
    Endpoint, EndpointKind, Level, Notification, SendError, Sender, Sent, dedup_key,
    test_notification,
};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::mpsc;

// ---------------------------------------------------------------------------------------
// The local HTTP receiver.

#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

type Shared = (mpsc::UnboundedSender<Received>, Arc<Mutex<Answer>>);

struct Receiver {
    addr: SocketAddr,
    received: mpsc::UnboundedReceiver<Received>,
    answer: Arc<Mutex<Answer>>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::unbounded_channel();
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            headers: vec![],
            body: "ok".into(),
        }));
        let app = Router::new()
            .fallback(record)
            .with_state((tx, answer.clone()));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            addr,
            received,
            answer,
            server,
        }
    }

    /// What the receiver answers from now on.
    fn answer(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        *self.answer.lock().unwrap() = Answer {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.to_string(),
        };
    }

    fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{path_and_query}", self.addr)
    }

    /// The next request. The receiver records it before it answers, so after `send`
    /// returned it is already here.
    fn next(&mut self) -> Received {
        self.received
            .try_recv()
            .expect("the receiver got a request before it answered")
    }

    fn nothing_more(&mut self) {
        if let Ok(r) = self.received.try_recv() {
            panic!("an unexpected request: {r:?}");
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(
    State((tx, answer)): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // The answer is chosen before the request is recorded, so a test that changes it on
    // seeing a request changes the answer to the next one.
    let a = answer.lock().unwrap().clone();
    tx.send(Received {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers,
        body: body.to_vec(),
    })
    .ok();
    let mut response = (StatusCode::from_u16(a.status).unwrap(), a.body).into_response();
    for (k, v) in a.headers {
        response.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    response
}

// ---------------------------------------------------------------------------------------
// Notifications and endpoints.

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn parse(t: &str) -> OffsetDateTime {
    OffsetDateTime::parse(t, &Rfc3339).unwrap_or_else(|e| panic!("{t:?} is not RFC 3339: {e}"))
}

/// The notification of a check "Risk score high" on acme/fraud 1.2.0, at `level`, now.
fn notification(level: Level, previous_level: Level) -> Notification {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    Notification {
        id: format!("notif-{level}"),
        test: false,
        check_id: "chk-1".into(),
        check_name: "Risk score high".into(),
        rule_id: Some("rule-1".into()),
        rule_name: Some("Page the ML team".into()),
        algorithm: "acme/fraud".into(),
        version: "1.2.0".into(),
        metric: Some("risk_score".into()),
        level,
        previous_level,
        value: Some(0.75),
        message: format!(
            "Risk score high: acme/fraud 1.2.0 is {level} (mean of risk_score over 5m = 0.75) & <rising>"
        ),
        tags: BTreeMap::from([
            ("team".to_string(), "ml".to_string()),
            ("cost-center".to_string(), "42".to_string()),
        ]),
        source_time: rfc3339(now - time::Duration::seconds(10)),
        status_time: rfc3339(now),
        since: rfc3339(now - time::Duration::minutes(3)),
        dedup_key: dedup_key("chk-1", "acme/fraud", "1.2.0"),
    }
}

fn endpoint(doc: Value) -> Endpoint {
    Endpoint::from_document(&doc, None, "ep-1".into(), "t".into(), "t".into())
        .unwrap_or_else(|e| panic!("the endpoint {doc} is refused: {e}"))
}

fn assert_no_secret(e: &SendError, secrets: &[&str]) {
    for s in secrets {
        assert!(!e.words.contains(s), "{s:?} is in the words: {}", e.words);
    }
}

/// A port nobody listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

// ---------------------------------------------------------------------------------------
// Slack.

#[tokio::test]
async fn slack_gets_the_influxdb_attachment_colored_by_level() {
    let mut r = Receiver::start().await;
    let sender = Sender::new();
    let e = endpoint(json!({
        "name": "team channel", "kind": "slack", "channel": "#ml-alerts",
        "url": r.url("/services/T000/B000/XXXXSECRETXXXX"),
    }));
    for (level, color) in [
        (Level::Crit, "danger"),
        (Level::Warn, "warning"),
        (Level::Info, "good"),
        (Level::Ok, "good"),
    ] {
        let n = notification(level, Level::Ok);
        let result = sender.send(&e, &n).await;
        assert_eq!(Sent::verdict(&result), "accepted (HTTP 200)");
        let got = r.next();
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/services/T000/B000/XXXXSECRETXXXX");
        assert_eq!(got.header("content-type"), Some("application/json"));
        let text = format!(
            "Risk score high: acme/fraud 1.2.0 is {level} (mean of risk_score over 5m = 0.75) &amp; &lt;rising&gt;"
        );
        assert_eq!(
            got.json(),
            json!({
                "channel": "#ml-alerts",
                "attachments": [{"color": color, "text": text, "mrkdwn_in": ["text"]}],
            }),
            "{level}"
        );
    }
    // Without a channel, none is named (the webhook's own channel is used).
    let e = endpoint(
        json!({"name": "default channel", "kind": "slack", "url": r.url("/services/T/B/C")}),
    );
    sender
        .send(&e, &notification(Level::Crit, Level::Ok))
        .await
        .unwrap();
    let body = r.next().json();
    assert!(body.get("channel").is_none(), "{body}");
    assert_eq!(body["attachments"][0]["color"], "danger");
    r.nothing_more();
}

// ---------------------------------------------------------------------------------------
// PagerDuty.

#[tokio::test]
async fn pagerduty_triggers_on_a_problem_and_resolves_the_same_incident_on_ok() {
    let mut r = Receiver::start().await;
    r.answer(
        202,
        &[("content-type", "application/json")],
        r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#,
    );
    let sender = Sender::new();
    let routing_key = "R0UT1NGKEYSECRET0000000000000000";
    let e = endpoint(json!({
        "name": "pager", "kind": "pagerduty", "routing_key": routing_key,
        "url": r.url("/v2/enqueue"), "client_url": "https://insights.example/panel/alerts",
    }));

    for (level, action, severity) in [
        (Level::Crit, "trigger", "critical"),
        (Level::Warn, "trigger", "warning"),
        (Level::Info, "trigger", "info"),
        (Level::Ok, "resolve", "info"),
    ] {
        let n = notification(level, Level::Warn);
        let result = sender.send(&e, &n).await;
        assert_eq!(Sent::verdict(&result), "accepted (HTTP 202)");
        let got = r.next();
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, "/v2/enqueue");
        assert_eq!(got.header("content-type"), Some("application/json"));
        assert_eq!(
            got.json(),
            json!({
                "routing_key": routing_key,
                "event_action": action,
                // Stable per check and series: `ok` resolves what `crit` opened.
                "dedup_key": dedup_key("chk-1", "acme/fraud", "1.2.0"),
                "payload": {
                    "summary": n.message,
                    "source": "acme/fraud 1.2.0",
                    "severity": severity,
                    "timestamp": n.status_time,
                    "component": "acme/fraud",
                    "group": "Risk score high",
                    "class": "risk_score",
                    "custom_details": {
                        "level": level.as_str(),
                        "previous_level": "warn",
                        "value": 0.75,
                        "tags": {"team": "ml", "cost-center": "42"},
                        "check_id": "chk-1",
                        "rule": "Page the ML team",
                        "test": false,
                    },
                },
                "client": "Insights",
                "client_url": "https://insights.example/panel/alerts",
            }),
            "{level}"
        );
    }

    // The summary is cut to PagerDuty's 1024 characters (not bytes); a deadman check has
    // no metric and its class says so.
    let mut n = notification(Level::Crit, Level::Ok);
    n.message = "é".repeat(1500);
    n.metric = None;
    n.value = None;
    sender.send(&e, &n).await.unwrap();
    let body = r.next().json();
    assert_eq!(body["payload"]["summary"], "é".repeat(1024));
    assert_eq!(body["payload"]["class"], "deadman");
    assert_eq!(body["payload"]["custom_details"]["value"], Value::Null);
    r.nothing_more();
}

#[tokio::test]
async fn a_pagerduty_test_opens_an_incident_of_its_own_and_resolves_it() {
    let mut r = Receiver::start().await;
    r.answer(202, &[], "{}");
    let sender = Sender::new();
    let e = endpoint(json!({
        "name": "pager", "kind": "pagerduty", "routing_key": "KEY", "url": r.url("/v2/enqueue"),
    }));
    let n = test_notification(&e, OffsetDateTime::now_utc());
    assert!(n.test);
    assert_eq!(n.check_name, "Insights test notification");
    assert!(n.message.contains("test notification"), "{}", n.message);
    assert_eq!(
        Sent::verdict(&sender.send(&e, &n).await),
        "accepted (HTTP 202)"
    );
    let trigger = r.next().json();
    let resolve = r.next().json();
    r.nothing_more();
    assert_eq!(trigger["event_action"], "trigger");
    assert_eq!(resolve["event_action"], "resolve");
    assert_eq!(trigger["dedup_key"], resolve["dedup_key"]);
    assert_eq!(trigger["payload"]["custom_details"]["test"], true);
    // Never a real check's incident, and a new one for every test.
    assert_ne!(
        trigger["dedup_key"],
        json!(dedup_key("chk-1", "acme/fraud", "1.2.0"))
    );
    let later = test_notification(&e, OffsetDateTime::now_utc() + time::Duration::seconds(1));
    assert_ne!(json!(later.dedup_key), trigger["dedup_key"]);
    // No `client_url` when none is configured.
    assert!(trigger.get("client_url").is_none(), "{trigger}");

    // A trigger accepted but a resolve refused: the person is told to resolve it.
    r.answer(202, &[], "{}");
    let n = test_notification(&e, OffsetDateTime::now_utc());
    let sent = sender.send(&e, &n);
    // Refuse the second request: switch the answer once the first one has arrived.
    let switch = async {
        let first = r.received.recv().await.unwrap();
        r.answer(400, &[], "Invalid event");
        first
    };
    let (result, first) = tokio::join!(sent, switch);
    assert_eq!(first.json()["event_action"], "trigger");
    let err = result.unwrap_err();
    assert!(
        err.words
            .starts_with("accepted (HTTP 202), but resolving the test incident failed")
            && err.words.contains("resolve it in PagerDuty"),
        "{}",
        err.words
    );
    assert_eq!(r.next().json()["event_action"], "resolve");
}

// ---------------------------------------------------------------------------------------
// HTTP.

#[tokio::test]
async fn http_honours_method_headers_auth_and_the_body_template() {
    let mut r = Receiver::start().await;
    // InfluxDB counts only 200 as success; any 2xx is "accepted" here.
    r.answer(201, &[], "");
    let sender = Sender::new();
    let e = endpoint(json!({
        "name": "hook", "kind": "http", "method": "PUT",
        "url": r.url("/hooks/alerts?token=SECRETQUERY"),
        "headers": {"X-Team": "ml", "X-Api-Key": "SECRETHEADER"},
        "auth": {"type": "basic", "username": "insights", "password": "SECRETPASSWORD"},
        "body_template": r#"{"text": "{{check}} is {{level}} (was {{previous_level}}): {{metric}} = {{value}}", "on": "{{algorithm}} {{version}}", "team": "{{tags.team}}", "rule": "{{rule}}", "at": "{{time}}", "since": "{{since}}", "window": "{{window}}"}"#,
    }));
    let mut n = notification(Level::Crit, Level::Ok);
    // A name that would break a JSON body if it were pasted in unescaped.
    n.check_name = r#"Risk "score" high"#.into();
    let result = sender.send(&e, &n).await;
    assert_eq!(Sent::verdict(&result), "accepted (HTTP 201)");
    let got = r.next();
    assert_eq!(got.method, "PUT");
    assert_eq!(got.path, "/hooks/alerts");
    assert_eq!(got.query.as_deref(), Some("token=SECRETQUERY"));
    assert_eq!(got.header("content-type"), Some("application/json"));
    assert_eq!(got.header("idempotency-key"), Some("notif-crit"));
    assert_eq!(got.header("x-team"), Some("ml"));
    assert_eq!(got.header("x-api-key"), Some("SECRETHEADER"));
    // base64("insights:SECRETPASSWORD")
    assert_eq!(
        got.header("authorization"),
        Some("Basic aW5zaWdodHM6U0VDUkVUUEFTU1dPUkQ=")
    );
    assert_eq!(
        got.json(),
        json!({
            "text": r#"Risk "score" high is crit (was ok): risk_score = 0.75"#,
            "on": "acme/fraud 1.2.0",
            "team": "ml",
            "rule": "Page the ML team",
            "at": n.status_time,
            "since": n.since,
            // Not part of a notification: empty.
            "window": "",
        })
    );
    r.nothing_more();
}

#[tokio::test]
async fn http_without_a_template_sends_the_status_with_version_1() {
    let mut r = Receiver::start().await;
    r.answer(204, &[], "");
    let sender = Sender::new();
    let e = endpoint(json!({
        "name": "hook", "kind": "http", "url": r.url("/status"),
        "auth": {"type": "bearer", "token": "SECRETTOKEN"},
    }));
    let n = notification(Level::Warn, Level::Crit);
    assert_eq!(
        Sent::verdict(&sender.send(&e, &n).await),
        "accepted (HTTP 204)"
    );
    let got = r.next();
    assert_eq!(got.method, "POST");
    assert_eq!(got.header("authorization"), Some("Bearer SECRETTOKEN"));
    assert_eq!(got.header("idempotency-key"), Some("notif-warn"));
    assert_eq!(
        got.json(),
        json!({
            "_version": 1,
            "id": "notif-warn",
            "test": false,
            "check_id": "chk-1",
            "check_name": "Risk score high",
            "rule_id": "rule-1",
            "rule_name": "Page the ML team",
            "level": "warn",
            "previous_level": "crit",
            "value": 0.75,
            "message": n.message,
            "tags": {"team": "ml", "cost-center": "42"},
            "algorithm": "acme/fraud",
            "version": "1.2.0",
            "metric": "risk_score",
            "source_time": n.source_time,
            "status_time": n.status_time,
            "since": n.since,
            "dedup_key": n.dedup_key,
        })
    );
    // The same notification again (a retry) carries the same key.
    sender.send(&e, &n).await.unwrap();
    assert_eq!(r.next().header("idempotency-key"), Some("notif-warn"));
    // No auth configured: no Authorization header.
    let e = endpoint(json!({"name": "hook", "kind": "http", "url": r.url("/status")}));
    sender.send(&e, &n).await.unwrap();
    assert_eq!(r.next().header("authorization"), None);
}

// ---------------------------------------------------------------------------------------
// What a failure says, and whether it is worth another try.

#[tokio::test]
async fn refusals_are_classified_and_their_words_hold_no_secret() {
    let mut r = Receiver::start().await;
    let sender = Sender::new();
    let http = endpoint(json!({
        "name": "hook", "kind": "http", "url": r.url("/hook/SECRETPATH?token=SECRETQUERY"),
        "headers": {"X-Api-Key": "SECRETHEADER"}, "auth": {"type": "bearer", "token": "SECRETTOKEN"},
    }));
    let slack = endpoint(json!({
        "name": "s", "kind": "slack", "url": r.url("/services/T/B/SECRETPATH"),
    }));
    let pagerduty = endpoint(json!({
        "name": "p", "kind": "pagerduty", "routing_key": "SECRETKEY", "url": r.url("/v2/enqueue"),
    }));
    let n = notification(Level::Crit, Level::Ok);

    // Each endpoint's own secrets.
    let own: [(&Endpoint, &[&str]); 3] = [
        (
            &http,
            &["SECRETPATH", "SECRETQUERY", "SECRETHEADER", "SECRETTOKEN"],
        ),
        (&slack, &["SECRETPATH"]),
        (&pagerduty, &["SECRETKEY"]),
    ];
    for (e, secrets) in own {
        r.answer(500, &[], "internal error");
        let err = sender.send(e, &n).await.unwrap_err();
        assert!(err.retry, "{err:?}");
        assert_eq!(err.retry_after, None);
        assert_eq!(err.words, "refused with status 500: internal error");
        assert_eq!(
            Sent::verdict(&Err(err)),
            "refused with status 500: internal error"
        );

        r.answer(429, &[("retry-after", "7")], "slow down");
        let err = sender.send(e, &n).await.unwrap_err();
        assert!(err.retry, "{err:?}");
        assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(err.words, "refused with status 429: slow down");

        r.answer(
            503,
            &[(
                "retry-after",
                &httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120)),
            )],
            "",
        );
        let err = sender.send(e, &n).await.unwrap_err();
        assert!(err.retry);
        let after = err.retry_after.expect("Retry-After as a date");
        assert!(
            after > Duration::from_secs(100) && after <= Duration::from_secs(120),
            "{after:?}"
        );
        assert_eq!(err.words, "refused with status 503");

        // A receiver that echoes what it got (the URL, the key) in its refusal: the words
        // still hold none of it.
        let echo = format!(
            "invalid request to {} (the secrets alone: {}), see \"docs\"",
            match &e.kind {
                EndpointKind::Http { .. } => "/hook/SECRETPATH?token=SECRETQUERY",
                EndpointKind::Slack { .. } => "/services/T/B/SECRETPATH",
                _ => "/v2/enqueue",
            },
            secrets.join(" ")
        );
        r.answer(400, &[], &echo);
        let err = sender.send(e, &n).await.unwrap_err();
        assert!(!err.retry, "{err:?}");
        assert!(
            err.words
                .starts_with("refused with status 400: invalid request to"),
            "{}",
            err.words
        );
        assert!(err.words.contains("see \\\"docs\\\""), "{}", err.words);
        assert_no_secret(&err, secrets);

        r.answer(403, &[("retry-after", "7")], "");
        let err = sender.send(e, &n).await.unwrap_err();
        assert!(!err.retry);
        assert_eq!(err.retry_after, None, "Retry-After means nothing on a 403");
        assert_eq!(Sent::verdict(&Err(err)), "refused with status 403");
    }
    // A refusal's words keep at most 200 characters of the answer.
    r.answer(400, &[], &"x".repeat(5000));
    let err = sender.send(&http, &n).await.unwrap_err();
    assert_eq!(
        err.words,
        format!("refused with status 400: {}", "x".repeat(200))
    );
    // A secret that the cut at 200 characters would halve is scrubbed before the cut.
    r.answer(
        400,
        &[],
        &format!("{}SECRETTOKEN and more", "x".repeat(195)),
    );
    let err = sender.send(&http, &n).await.unwrap_err();
    assert_eq!(
        err.words,
        format!("refused with status 400: {}… and", "x".repeat(195))
    );
    // A redirect is not followed (it would carry the notification somewhere unconfigured).
    r.answer(302, &[("location", "http://127.0.0.1:1/elsewhere")], "");
    let err = sender.send(&http, &n).await.unwrap_err();
    assert!(!err.retry);
    assert!(
        err.words.starts_with("refused with status 302"),
        "{}",
        err.words
    );
    while r.received.try_recv().is_ok() {}
    r.nothing_more();
}

#[tokio::test]
async fn nothing_listening_is_unreachable_and_retried_without_naming_the_url() {
    let port = free_port();
    let sender = Sender::new();
    let n = notification(Level::Crit, Level::Ok);
    for e in [
        endpoint(json!({
            "name": "s", "kind": "slack",
            "url": format!("http://127.0.0.1:{port}/services/T/B/SECRETPATH?x=SECRETQUERY"),
        })),
        endpoint(json!({
            "name": "h", "kind": "http",
            "url": format!("http://127.0.0.1:{port}/hook/SECRETPATH?token=SECRETQUERY"),
            "auth": {"type": "bearer", "token": "SECRETTOKEN"},
        })),
        endpoint(json!({
            "name": "p", "kind": "pagerduty", "routing_key": "SECRETKEY",
            "url": format!("http://127.0.0.1:{port}/v2/enqueue"),
        })),
        endpoint(
            json!({"name": "a", "kind": "alertmanager", "url": format!("http://127.0.0.1:{port}")}),
        ),
    ] {
        let err = sender.send(&e, &n).await.unwrap_err();
        assert!(err.retry, "{err:?}");
        assert_eq!(err.words, "unreachable: connection refused");
        assert_eq!(
            Sent::verdict(&Err(err.clone())),
            "unreachable: connection refused"
        );
        assert_no_secret(&err, &["SECRET", &port.to_string()]);
    }
}

/// A receiver that accepts connections and never says a word: the total timeout (15 s) is
/// what ends the wait, for HTTP and for SMTP (whose server speaks first). This test takes
/// those 15 s; both sends wait them out together.
#[tokio::test]
async fn a_receiver_that_never_answers_times_out_after_15_s_and_is_retried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let sender = Sender::new();
    let n = notification(Level::Crit, Level::Ok);
    let http = endpoint(json!({
        "name": "h", "kind": "http", "url": format!("http://127.0.0.1:{port}/hook/SECRETPATH"),
    }));
    let mail = endpoint(json!({
        "name": "m", "kind": "email", "host": "127.0.0.1", "port": port, "tls": "none",
        "from": "alerts@example.com", "to": ["oncall@example.com"],
    }));
    let start = std::time::Instant::now();
    let (http_result, mail_result) = tokio::join!(sender.send(&http, &n), sender.send(&mail, &n));
    let waited = start.elapsed();
    silent.abort();
    for err in [http_result.unwrap_err(), mail_result.unwrap_err()] {
        assert!(err.retry, "{err:?}");
        assert_eq!(err.words, "timed out after 15 s");
        assert_no_secret(&err, &["SECRETPATH"]);
    }
    assert!(
        waited >= Duration::from_secs(15) && waited < Duration::from_secs(25),
        "{waited:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Processes the tests start.

/// A child process, killed (and reaped) when the guard drops, however the test ends.
struct Process {
    name: &'static str,
    child: Child,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, command: &mut Command, log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Process { name, child, log }
    }

    /// Panics, with the process's output, if it has exited.
    fn still_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited ({status}): {}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `ready` until it is true (a process has no way to tell us it listens). Panics
/// after `limit`, or as soon as the process has exited.
async fn wait_until<F, Fut>(process: &mut Process, limit: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = std::time::Instant::now();
    loop {
        process.still_running();
        if ready().await {
            return;
        }
        if start.elapsed() > limit {
            panic!(
                "{} was not ready within {limit:?}: {}",
                process.name,
                std::fs::read_to_string(&process.log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

// ---------------------------------------------------------------------------------------
// Email, through a real SMTP server.

struct Smtp {
    port: u16,
    // Fields drop in order: the server stops, then its directory goes.
    _server: Process,
    dir: tempfile::TempDir,
}

impl Smtp {
    async fn start() -> Smtp {
        Smtp::start_with(|_| Vec::new()).await
    }

    /// With more arguments for aiosmtpd, made from the server's directory.
    async fn start_with(extra: impl FnOnce(&Path) -> Vec<String>) -> Smtp {
        let venv = match std::env::var_os("INSIGHTS_TEST_VENV") {
            Some(v) => workspace_root().join(v),
            None => workspace_root().join("target/test-venv"),
        };
        let python = venv.join("bin/python");
        let has_it = Command::new(&python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            has_it,
            "{} cannot import aiosmtpd, the SMTP server these tests need: run scripts/test, \
             which installs tests/e2e/requirements.txt into {}",
            python.display(),
            venv.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).unwrap();
        let port = free_port();
        let extra = extra(dir.path());
        let mut server = Process::spawn(
            "aiosmtpd",
            Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l"])
                .arg(format!("127.0.0.1:{port}"))
                .args(&extra)
                .args(["-c", "smtp_receiver.Handler"])
                .arg(&inbox)
                .env(
                    "PYTHONPATH",
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests"),
                ),
            dir.path().join("aiosmtpd.log"),
        );
        wait_until(&mut server, Duration::from_secs(20), || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Smtp {
            port,
            _server: server,
            dir,
        }
    }

    /// The messages received so far, in order. The handler writes each before it answers
    /// 250, so a message that `send` reported accepted is here.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path().join("inbox"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    fn endpoint(&self, tls: &str, to: &[&str]) -> Endpoint {
        endpoint(json!({
            "name": "mail", "kind": "email", "host": "127.0.0.1", "port": self.port, "tls": tls,
            "from": "Insights <alerts@example.com>", "to": to,
        }))
    }
}

#[tokio::test]
async fn email_arrives_at_a_real_smtp_server_with_every_field() {
    let smtp = Smtp::start().await;
    let sender = Sender::new();
    let e = smtp.endpoint("none", &["oncall@example.com", "ml-team@example.com"]);
    let mut n = notification(Level::Crit, Level::Ok);
    // Longer than a mail line, and not ASCII: it must arrive as written.
    n.message = format!("{} — seuil dépassé, {}", n.message, "x".repeat(100));
    let result = sender.send(&e, &n).await;
    assert_eq!(result, Ok(Sent { status: None }));
    assert_eq!(Sent::verdict(&result), "accepted by the SMTP server");

    let messages = smtp.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let m = &messages[0];
    assert_eq!(m["mail_from"], "alerts@example.com");
    assert_eq!(
        m["rcpt_tos"],
        json!(["oncall@example.com", "ml-team@example.com"])
    );
    // As a mail reader shows it (the handler decodes it with Python's email package).
    let h = &m["headers"];
    assert_eq!(h["subject"], "[CRIT] Risk score high: acme/fraud 1.2.0");
    assert_eq!(h["from"], "Insights <alerts@example.com>");
    assert_eq!(h["to"], "oncall@example.com, ml-team@example.com");
    assert_eq!(h["message-id"], "<notif-crit@insights>");
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["charset"], "utf-8");
    let body = m["body"].as_str().unwrap();
    let expected_lines = [
        n.message.clone(),
        "Check:         Risk score high (id chk-1)".into(),
        "Level:         crit (was ok)".into(),
        "Value:         0.75".into(),
        "Metric:        risk_score".into(),
        "Algorithm:     acme/fraud 1.2.0".into(),
        format!("Since:         {}", n.since),
        format!("Checked at:    {}", n.status_time),
        format!("Window end:    {}", n.source_time),
        "Rule:          Page the ML team (id rule-1)".into(),
        "Tags:          cost-center=42, team=ml".into(),
        "Notification:  notif-crit".into(),
    ];
    for line in expected_lines {
        assert!(
            body.lines().any(|l| l == line),
            "no line {line:?} in:\n{body}"
        );
    }

    // A test is marked in the subject and the body.
    let t = test_notification(&e, OffsetDateTime::now_utc());
    sender.send(&e, &t).await.unwrap();
    let messages = smtp.messages();
    assert_eq!(
        messages[1]["headers"]["subject"],
        "[TEST] [INFO] Insights test notification: insights/test 0.0.0"
    );
    let body = messages[1]["body"].as_str().unwrap();
    assert!(body.starts_with("This is a test notification"), "{body}");
}

#[tokio::test]
async fn smtp_refusals_permanent_are_final_transient_are_retried() {
    let smtp = Smtp::start().await;
    let sender = Sender::new();
    let n = notification(Level::Crit, Level::Ok);

    let err = sender
        .send(
            &smtp.endpoint("none", &["reject-permanent@example.com"]),
            &n,
        )
        .await
        .unwrap_err();
    assert!(!err.retry, "{err:?}");
    assert!(
        err.words.starts_with("refused by the SMTP server") && err.words.contains("550"),
        "{}",
        err.words
    );

    let err = sender
        .send(
            &smtp.endpoint("none", &["reject-transient@example.com"]),
            &n,
        )
        .await
        .unwrap_err();
    assert!(err.retry, "{err:?}");
    assert!(
        err.words.starts_with("deferred by the SMTP server") && err.words.contains("451"),
        "{}",
        err.words
    );

    // STARTTLS is required, never skipped: this server offers none, so nothing is sent in
    // plain text.
    let err = sender
        .send(&smtp.endpoint("starttls", &["oncall@example.com"]), &n)
        .await
        .unwrap_err();
    assert!(!err.retry, "{err:?}");
    assert!(err.words.contains("STARTTLS"), "{}", err.words);
    assert!(smtp.messages().is_empty(), "{:?}", smtp.messages());

    // Nobody listening: worth another try.
    let e = endpoint(json!({
        "name": "mail", "kind": "email", "host": "127.0.0.1", "port": free_port(), "tls": "none",
        "username": "u", "password": "SECRETPASSWORD",
        "from": "alerts@example.com", "to": ["oncall@example.com"],
    }));
    let err = sender.send(&e, &n).await.unwrap_err();
    assert!(err.retry, "{err:?}");
    assert_eq!(err.words, "unreachable: connection refused");
    assert_no_secret(&err, &["SECRETPASSWORD"]);
}

/// A self-signed certificate for 127.0.0.1 in `dir` (cert.pem, key.pem), which no system
/// trusts.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs (scripts/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[tokio::test]
async fn a_certificate_nobody_trusts_is_refused_and_not_retried() {
    // HTTPS (a real TLS server: `openssl s_server`), STARTTLS offered (and required by the
    // server) and implicit TLS, each with a self-signed certificate: refused before a word of
    // the notification is sent, and not retried (the endpoint or the server must change).
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let port = free_port();
    let mut https = Process::spawn(
        "openssl s_server",
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key),
        dir.path().join("s_server.log"),
    );
    wait_until(&mut https, Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    let sender = Sender::new();
    let n = notification(Level::Crit, Level::Ok);
    let e = endpoint(json!({
        "name": "h", "kind": "http", "url": format!("https://127.0.0.1:{port}/hook/SECRETPATH"),
    }));
    let err = sender.send(&e, &n).await.unwrap_err();
    assert!(!err.retry, "{err:?}");
    assert_eq!(
        err.words,
        "TLS failed: certificate verify failed (self-signed certificate)"
    );

    let starttls = Smtp::start_with(|dir| {
        let (cert, key) = self_signed(dir);
        vec![
            "--tlscert".into(),
            cert.display().to_string(),
            "--tlskey".into(),
            key.display().to_string(),
        ]
    })
    .await;
    let smtps = Smtp::start_with(|dir| {
        let (cert, key) = self_signed(dir);
        vec![
            "--smtpscert".into(),
            cert.display().to_string(),
            "--smtpskey".into(),
            key.display().to_string(),
        ]
    })
    .await;
    for (smtp, tls) in [(&starttls, "starttls"), (&smtps, "tls")] {
        let err = sender
            .send(&smtp.endpoint(tls, &["oncall@example.com"]), &n)
            .await
            .unwrap_err();
        assert!(!err.retry, "{tls}: {err:?}");
        assert_eq!(
            err.words, "TLS failed: certificate verify failed (self-signed certificate)",
            "{tls}"
        );
        assert!(smtp.messages().is_empty(), "{tls}: {:?}", smtp.messages());
    }
}

// ---------------------------------------------------------------------------------------
// Alertmanager, the real one.

struct Alertmanager {
    url: String,
    // Fields drop in order: the process stops, then its directory goes.
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Alertmanager {
    async fn start() -> Alertmanager {
        let binary = Path::new("/usr/bin/prometheus-alertmanager");
        assert!(
            binary.exists(),
            "{} is missing: run scripts/test, which installs Debian's prometheus-alertmanager",
            binary.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        // Everything goes to a receiver that sends nothing: the test reads the API.
        std::fs::write(
            &config,
            "route:\n  receiver: \"null\"\nreceivers:\n  - name: \"null\"\n",
        )
        .unwrap();
        let port = free_port();
        let mut process = Process::spawn(
            "prometheus-alertmanager",
            Command::new(binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                // No gossip: no cluster port, no peers.
                .arg("--cluster.listen-address="),
            dir.path().join("alertmanager.log"),
        );
        let url = format!("http://127.0.0.1:{port}");
        let ready = format!("{url}/-/ready");
        let client = reqwest::Client::new();
        wait_until(&mut process, Duration::from_secs(30), || {
            let (client, ready) = (client.clone(), ready.clone());
            async move {
                client
                    .get(ready)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        Alertmanager {
            url,
            _process: process,
            _dir: dir,
        }
    }

    /// The alerts it holds for our check (`GET /api/v2/alerts`, its defaults).
    async fn alerts_of(&self, check_id: &str) -> Vec<Value> {
        let all: Vec<Value> = reqwest::get(format!("{}/api/v2/alerts", self.url))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap();
        all.into_iter()
            .filter(|a| a["labels"]["check_id"] == check_id)
            .collect()
    }

    /// Polls until `done` holds for our check's alerts (Alertmanager marks a new alert
    /// active asynchronously); panics with what it holds after 10 s.
    async fn until(&self, check_id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = std::time::Instant::now();
        loop {
            let alerts = self.alerts_of(check_id).await;
            if done(&alerts) {
                return alerts;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!("Alertmanager holds: {alerts:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

fn active(alerts: &[Value]) -> Vec<&Value> {
    alerts
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .collect()
}

#[tokio::test]
async fn alertmanager_holds_the_firing_alert_and_resolves_it_on_ok() {
    let am = Alertmanager::start().await;
    let sender = Sender::new();
    let e = endpoint(json!({"name": "am", "kind": "alertmanager", "url": format!("{}/", am.url)}));

    let crit = notification(Level::Crit, Level::Ok);
    assert_eq!(
        Sent::verdict(&sender.send(&e, &crit).await),
        "accepted (HTTP 200)"
    );
    let alerts = am.until("chk-1", |a| active(a).len() == 1).await;
    let alert = &alerts[0];
    assert_eq!(
        alert["labels"],
        json!({
            "alertname": "Risk score high",
            "check_id": "chk-1",
            "algorithm": "acme/fraud",
            "version": "1.2.0",
            "metric": "risk_score",
            "team": "ml",
            // A tag key that is not a valid label name, made one.
            "cost_center": "42",
        })
    );
    assert_eq!(
        alert["annotations"],
        json!({
            "summary": crit.message,
            "level": "crit",
            "previous_level": "ok",
            "value": "0.75",
            "rule": "Page the ML team",
        })
    );
    assert_eq!(
        parse(alert["startsAt"].as_str().unwrap()),
        parse(&crit.since)
    );
    // Firing for two hours unless re-sent (Insights re-sends within one).
    assert_eq!(
        parse(alert["endsAt"].as_str().unwrap()),
        parse(&crit.status_time) + time::Duration::hours(2)
    );

    // crit → warn: the same alert, updated (the level is not a label).
    let warn = notification(Level::Warn, Level::Crit);
    sender.send(&e, &warn).await.unwrap();
    let alerts = am
        .until("chk-1", |a| {
            a.len() == 1 && a[0]["annotations"]["level"] == "warn"
        })
        .await;
    assert_eq!(active(&alerts).len(), 1);
    assert_eq!(alerts[0]["fingerprint"], alert["fingerprint"]);

    // ok: resolved. Alertmanager no longer lists it among the alerts it holds as firing.
    let ok = notification(Level::Ok, Level::Warn);
    sender.send(&e, &ok).await.unwrap();
    let alerts = am.until("chk-1", |a| active(a).is_empty()).await;
    for a in &alerts {
        let ends = parse(a["endsAt"].as_str().unwrap());
        assert!(ends <= OffsetDateTime::now_utc(), "{a:#}");
    }
}

#[tokio::test]
async fn an_alertmanager_test_alert_is_its_own_and_expires_by_itself() {
    let am = Alertmanager::start().await;
    let sender = Sender::new();
    let e = endpoint(json!({"name": "am", "kind": "alertmanager", "url": am.url}));
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let t = test_notification(&e, now);
    sender.send(&e, &t).await.unwrap();
    let alerts = am.until("test", |a| active(a).len() == 1).await;
    assert_eq!(
        alerts[0]["labels"]["alertname"],
        "Insights test notification"
    );
    assert_eq!(alerts[0]["labels"]["test"], "true");
    assert_eq!(alerts[0]["annotations"]["test"], "true");
    assert_eq!(
        parse(alerts[0]["endsAt"].as_str().unwrap()),
        now + time::Duration::minutes(5)
    );
}
