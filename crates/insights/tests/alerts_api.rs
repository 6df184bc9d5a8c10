//! Alerting end to end through the HTTP API of a real server: real worker processes report
//! `risk_score`, payloads reach the series store through the dispatcher, the scheduler runs the
//! check at its times, and the outbox delivers to a local HTTP receiver (the `http` endpoint
//! kind; it stands in for any webhook). Plus what the API refuses, and that no secret ever
//! comes back.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestServer, report};
use reqwest::Method;
use serde_json::{Value, json};

struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<(axum::http::HeaderMap, Value)>>>,
}

async fn receiver() -> Receiver {
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |h: axum::http::HeaderMap, body: String| {
            let g = g.clone();
            async move {
                g.lock().unwrap().push((
                    h,
                    serde_json::from_str(&body).unwrap_or(Value::String(body)),
                ));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, got }
}

impl Receiver {
    fn levels(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, b)| b["test"] == false)
            .map(|(_, b)| b["level"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Calls `acme/scorer` with `risk` until the receiver has got `level`, for at most 90 s (the
/// check runs every 10 s; a payload that lands after its window's run is simply followed by
/// the next call's).
async fn call_until(t: &TestServer, key: &str, r: &Receiver, risk: f64, level: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while !r.levels().iter().any(|l| l == level) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {level} notification after 90 s; got {:?}",
            r.levels()
        );
        let input = json!({"reports": [report(&[("risk_score", risk.into())])]});
        let (status, _, body) = t.call(key, "acme/scorer", input).await;
        assert_eq!(status, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crossed_threshold_reaches_the_receiver_and_the_recovery_follows() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let version = t.probe("acme", "scorer", 2, true).await;
    let key = t.new_key().await;
    let r = receiver().await;

    let (s, endpoint) = t
        .admin(
            Method::POST,
            "/v1/admin/notification-endpoints",
            Some(json!({"name": "ops hook", "kind": "http", "url": format!("{}?token=SECRET-IN-URL", r.url),
                        "headers": {"X-Team": "SECRET-HEADER"}, "auth": {"type": "bearer", "token": "SECRET-TOKEN"}})),
        )
        .await;
    assert_eq!(s, 201, "{endpoint}");
    let (s, check) = t
        .admin(
            Method::POST,
            "/v1/admin/checks",
            Some(json!({"name": "Risk score high", "kind": "threshold",
                        "query": {"algorithm": "acme/scorer", "metric": "risk_score", "fn": "max", "window": "10s"},
                        "every": "10s", "offset": "1s",
                        "thresholds": [{"level": "crit", "type": "greater", "value": 0.7}],
                        "tags": {"team": "ml"}})),
        )
        .await;
    assert_eq!(s, 201, "{check}");
    let (s, rule) = t
        .admin(
            Method::POST,
            "/v1/admin/notification-rules",
            Some(
                json!({"name": "to ops", "endpoint": endpoint["id"], "checks": [check["id"]],
                        "when": [{"from": "any", "to": "crit"}, {"from": "any", "to": "ok"}]}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{rule}");

    call_until(&t, &key, &r, 0.9, "crit").await;
    call_until(&t, &key, &r, 0.1, "ok").await;
    assert_eq!(r.levels(), ["crit", "ok"], "each change once");
    {
        let got = r.got.lock().unwrap();
        let (headers, crit) = &got[0];
        assert_eq!(headers["authorization"], "Bearer SECRET-TOKEN");
        assert_eq!(headers["x-team"], "SECRET-HEADER");
        assert!(headers.contains_key("idempotency-key"));
        assert_eq!(crit["_version"], 1);
        assert_eq!(crit["check_name"], "Risk score high");
        assert_eq!(crit["algorithm"], "acme/scorer");
        assert_eq!(crit["version"], version.as_str());
        assert_eq!(crit["previous_level"], "ok");
        assert_eq!(crit["tags"]["team"], "ml");
        assert!(crit["value"].as_f64().unwrap() > 0.7, "{crit}");
        assert!(
            crit["message"]
                .as_str()
                .unwrap()
                .contains("Risk score high"),
            "{crit}"
        );
    }

    // The check shows its series, the history both changes, the outbox both sent.
    let (_, c) = t
        .admin(
            Method::GET,
            &format!("/v1/admin/checks/{}", check["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(c["series"][0]["level"], "ok", "{c}");
    let (_, statuses) = t
        .admin(
            Method::GET,
            &format!("/v1/admin/statuses?check={}", check["id"].as_str().unwrap()),
            None,
        )
        .await;
    let levels: Vec<&str> = statuses["statuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["level"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["ok", "crit"], "newest first: {statuses}");
    let (_, notes) = t
        .admin(
            Method::GET,
            &format!(
                "/v1/admin/notifications?rule={}",
                rule["id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    let states: Vec<&str> = notes["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["sent", "sent"], "{notes}");
    assert_eq!(
        t.metric("insights_alert_notifications_total{endpoint_kind=\"http\",outcome=\"sent\"}")
            .await,
        2.0
    );

    // No secret comes back from any read.
    for path in [
        "/v1/admin/notification-endpoints".to_string(),
        format!(
            "/v1/admin/notification-endpoints/{}",
            endpoint["id"].as_str().unwrap()
        ),
        "/v1/admin/notifications".to_string(),
        "/v1/admin/notification-rules".to_string(),
    ] {
        let (_, body) = t.admin(Method::GET, &path, None).await;
        assert!(!body.to_string().contains("SECRET"), "{path}: {body}");
    }
    assert!(!endpoint.to_string().contains("SECRET"), "{endpoint}");
    assert_eq!(endpoint["url_set"], true);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_published_version_that_never_reports_is_caught_by_a_deadman_check() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "silent", 1, true).await;
    let (s, check) = t
        .admin(
            Method::POST,
            "/v1/admin/checks",
            Some(
                json!({"name": "Silent", "kind": "deadman", "query": {"algorithm": "*"},
                        "every": "10s", "time_since": "10s", "level": "warn"}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{check}");
    let path = format!("/v1/admin/checks/{}", check["id"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, c) = t.admin(Method::GET, &path, None).await;
        let series = c["series"].as_array().unwrap();
        if series
            .iter()
            .any(|s| s["algorithm"] == "acme/silent" && s["level"] == "warn")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never warned: {c}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_documents_are_refused_naming_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let (s, e) = t
        .admin(
            Method::POST,
            "/v1/admin/checks",
            Some(json!({"name": "x", "kind": "threshold",
                        "query": {"algorithm": "acme", "metric": "risk_score", "fn": "average"},
                        "every": "1s", "thresholds": [{"level": "critical", "type": "greater", "value": "high"}],
                        "message": "{{check}} {{nope}}"})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    let fields: Vec<&str> = e["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for want in [
        "every",
        "query.algorithm",
        "query.fn",
        "thresholds[0].level",
        "thresholds[0].value",
        "message",
    ] {
        assert!(fields.contains(&want), "{want} not in {fields:?}");
    }
    assert_eq!(e["error"]["error_type"], "InputError");
    let (s, _) = t
        .admin(Method::GET, "/v1/admin/checks/0123abcd", None)
        .await;
    assert_eq!(s, 404);
    let (s, e) = t
        .admin(Method::GET, "/v1/admin/statuses?level=bad", None)
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("level")),
        "{e}"
    );
    let (s, e) = t
        .admin(Method::GET, "/v1/admin/notifications?since=-1h", None)
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("since")),
        "{e}"
    );
    let (s, e) = t
        .admin(
            Method::POST,
            "/v1/admin/notification-rules",
            Some(json!({"name": "r", "endpoint": "none", "when": [{"is": "crit"}]})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("endpoint")),
        "{e}"
    );
    // Without the admin token: refused.
    let resp = reqwest::get(format!("{}/v1/admin/checks", t.url))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    t.stop().await;
}
