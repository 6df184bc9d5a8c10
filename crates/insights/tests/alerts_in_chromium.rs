//! The seed's alerting example end to end, made in the panel's Alerts page in a real headless
//! Chromium (Debian's `chromium` and `chromedriver`) against the real server, its real
//! scheduler and outbox, and real probe workers:
//!
//! - the check "risk_score CRIT above 0.70" (threshold greater 0.7 on the max over 10 s, every
//!   10 s) made in the check form, whose first try (every 5 s) gets the API's error next to the
//!   field, and whose live preview shows the recent windows' levels and the threshold line;
//! - a Slack endpoint pointing at a local webhook receiver, whose **Test** says accepted while
//!   the receiver gets the test message, and which keeps its webhook URL when edited with the
//!   URL field left empty;
//! - a rule from any level to crit and from any level to ok;
//! - calls with a high risk bring one `danger` message naming the check, calls with a low risk
//!   bring one recovery (`good`); the page shows the series crit, then ok, and the history shows
//!   both notifications `sent`; the dashboard's risk_score chart shows the check's threshold and
//!   marks the two level changes; the page works at phone width and every control has a name.
//!
//! Slack itself cannot be reached from here: a local HTTP receiver (axum on 127.0.0.1:0) stands
//! in for its incoming-webhook server, and the body it gets is checked field by field against
//! the attachment format InfluxDB 2 sends (`attachments[0].color`, `text`, `mrkdwn_in`).
//!
//! Every wait is for a condition (the receiver, the page, the API), bounded by a deadline. The
//! screenshots go to `target/screenshots/alerts-*.png`; `docs/screenshots/alerts*.png` are copies
//! of them made by hand (a test run never changes tracked files): `alerts.png` is `alerts-page`,
//! `alerts-check.png` `alerts-check-preview`, `alerts-phone.png` `alerts-phone-check`, and
//! `alerts-check-error.png`, `alerts-dashboard.png` keep their names.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use common::browser::{Browser, PATIENCE};
use common::{TestServer, report};
use reqwest::Method;
use serde_json::{Value, json};

const CHECK: &str = "risk_score CRIT above 0.70";
const CHANNEL: &str = "#ml-alerts";
/// The webhook's path: a secret, as a Slack webhook URL is.
const HOOK: &str = "/services/T0INSIGHTS/B0ALERTS/s3cr3tw3bh00k";

/// What the stand-in for Slack received: each request's path and JSON body, in order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Value)>>>);

struct SlackReceiver {
    url: String,
    got: Received,
    server: tokio::task::JoinHandle<()>,
}

async fn record(State(got): State<Received>, uri: Uri, body: Bytes) -> &'static str {
    let json = serde_json::from_slice(&body).unwrap_or_else(
        |e| json!({"not_json": e.to_string(), "body": String::from_utf8_lossy(&body)}),
    );
    got.0.lock().unwrap().push((uri.path().to_string(), json));
    // What Slack answers an incoming webhook that it accepted.
    "ok"
}

impl SlackReceiver {
    async fn start() -> SlackReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}{HOOK}", listener.local_addr().unwrap());
        let got = Received::default();
        let app = Router::new().fallback(record).with_state(got.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SlackReceiver { url, got, server }
    }

    fn bodies(&self) -> Vec<Value> {
        let got = self.got.0.lock().unwrap();
        for (path, _) in got.iter() {
            assert_eq!(path, HOOK, "every message goes to the webhook's path");
        }
        got.iter().map(|(_, b)| b.clone()).collect()
    }

    /// The messages whose text contains `words`.
    fn messages_with(&self, words: &str) -> Vec<Value> {
        self.bodies()
            .into_iter()
            .filter(|b| {
                b["attachments"][0]["text"]
                    .as_str()
                    .is_some_and(|t| t.contains(words))
            })
            .collect()
    }
}

impl Drop for SlackReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// One message as Slack reads it: one attachment of `color` whose text (markdown) names
/// `words`, in the configured channel.
fn assert_slack_body(b: &Value, color: &str, words: &[&str]) {
    assert_eq!(b["channel"], CHANNEL, "{b}");
    let attachments = b["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1, "{b}");
    let a = &attachments[0];
    assert_eq!(a["color"], color, "{b}");
    assert_eq!(a["mrkdwn_in"], json!(["text"]), "{b}");
    let text = a["text"].as_str().expect("a text");
    for w in words {
        assert!(text.contains(w), "{w:?} not in {text:?}");
    }
}

async fn call_with_risk(t: &TestServer, key: &str, risk: f64) {
    let input = json!({"reports": [report(&[("risk_score", json!(risk))])]});
    let (status, _, body) = t.call(key, "acme/scorer", input).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("error").is_none(), "{body}");
}

/// Calls with `risk` until the receiver has a message containing `words` (the check runs every
/// 10 s over the last 10 s, so the calls must go on until a run sees only them); answers it.
async fn calls_until(
    t: &TestServer,
    key: &str,
    r: &SlackReceiver,
    risk: f64,
    words: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        call_with_risk(t, key, risk).await;
        // Between calls, watch the receiver for a moment.
        let watch = tokio::time::Instant::now() + Duration::from_millis(500);
        while tokio::time::Instant::now() < watch {
            if let Some(m) = r.messages_with(words).into_iter().next() {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no message with {words:?} after calls with risk {risk}; the receiver has {:?}",
            r.bodies()
        );
    }
}

/// Waits until the series store lists `risk_score` for the probe (its sink runs beside the
/// request path).
async fn wait_metric(t: &TestServer) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (s, body) = t
            .admin(
                Method::GET,
                "/v1/admin/insights/metrics?algorithm=acme/scorer",
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        if body.to_string().contains("\"risk_score\"") {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn attr(b: &Browser, css: &str, name: &str) -> Option<String> {
    b.find(css).await.attr(name).await.unwrap()
}

/// Nothing wider than the window (phone width), and no unnamed control.
async fn fits_and_is_named(b: &Browser, what: &str) {
    // The elements that reach past the window's right edge (none, once laid out).
    // The width inside the window's scroll bar, which the page must not pass.
    let script = "const d = document.querySelector('dialog[open]');
         const root = d ?? document.body, w = document.documentElement.clientWidth;
         if (d ? d.getBoundingClientRect().right <= w + 1 : document.documentElement.scrollWidth <= w) return [];
         return ['the page is ' + document.documentElement.scrollWidth + ' px wide in ' + w].concat([...root.querySelectorAll('*')]
           .filter(e => e.getBoundingClientRect().right > w + 1 && !e.closest('.table-wrap'))
           .map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right)).slice(0, 10));";
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let wide = b.c.execute(script, vec![]).await.unwrap();
        if wide == json!([]) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: wider than the window: {wide}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.unlabelled_controls().await, Vec::<Value>::new(), "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn risk_score_crit_above_0_70_reaches_slack_and_recovers_as_the_alerts_page_shows() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    let slack = SlackReceiver::start().await;
    for risk in [0.2, 0.35, 0.1] {
        call_with_risk(&t, &key, risk).await;
    }
    wait_metric(&t).await;

    let b = Browser::open(&t.url, "alerts").await;
    b.sign_in("/admin/alerts").await;
    b.find("#checks[data-refreshes]").await;
    assert_eq!(
        b.text("header.top nav a[aria-current='page']").await,
        "Alerts"
    );

    // ---- The check ----
    b.click("#new-check").await;
    b.find("#check-dialog[data-ready='new']").await;
    b.fill("#check-name", CHECK).await;
    assert_eq!(
        b.find("#check-query-algorithm")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("acme/scorer"),
        "the only algorithm is chosen"
    );
    b.find("#check-query-metric option[value='risk_score']")
        .await;
    b.select("#check-query-metric", "risk_score").await;
    b.select("#check-query-fn", "max").await;
    b.fill("#check-query-window", "10s").await;
    b.fill("#check-every", "5s").await;
    b.fill("#check-offset", "0s").await;
    assert_eq!(
        b.find("#check-thresholds-0-level")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("crit")
    );
    b.select("#check-thresholds-0-type", "greater").await;
    b.fill("#check-thresholds-0-value", "0.7").await;
    fits_and_is_named(&b, "the check form").await;
    // Every 5 s is below the minimum: the API says so, next to the field.
    b.click("#save-check").await;
    let said = b.wait_text("#error-check-every", |s| !s.is_empty()).await;
    assert!(said.contains("10s"), "{said}");
    assert_eq!(
        attr(&b, "#check-every", "aria-invalid").await.as_deref(),
        Some("true")
    );
    b.find("#check-preview[data-state='invalid']").await;
    b.screenshot("check-error").await;
    b.fill("#check-every", "10s").await;
    assert!(
        !b.displayed("#error-check-every").await,
        "the error goes once the field changes"
    );
    // The live preview: the recent windows of the low calls, each ok, and the threshold line.
    // The live preview shows completed windows only: it is asked again until the window of
    // the low calls has ended.
    b.wait_js(
        "the preview of the low calls' windows",
        "return document.querySelector(\"#check-preview[data-state='ready'] ol.strip[data-series='acme/scorer 1.0.0']\");",
    )
    .await;
    b.find("#check-preview[data-state='ready'] .uplot canvas")
        .await;
    let levels = attr(
        &b,
        "#check-preview ol.strip[data-series='acme/scorer 1.0.0']",
        "data-levels",
    )
    .await
    .unwrap();
    assert!(
        !levels.is_empty() && levels.split(' ').all(|l| l == "ok"),
        "{levels}"
    );
    assert_eq!(
        attr(&b, "#check-preview .chart", "data-thresholds")
            .await
            .as_deref(),
        Some("crit 0.7")
    );
    b.screenshot("check-preview").await;
    b.click("#save-check").await;
    b.wait_text("#checks tbody", |s| s.contains(CHECK)).await;
    assert!(!b.displayed("#check-dialog").await);
    let (_, checks) = t.admin(Method::GET, "/v1/admin/checks", None).await;
    let c = &checks["checks"][0];
    assert_eq!(checks["checks"].as_array().unwrap().len(), 1, "{checks}");
    assert_eq!(
        (
            &c["name"],
            &c["kind"],
            &c["query"],
            &c["every"],
            &c["offset"],
            &c["thresholds"]
        ),
        (
            &json!(CHECK),
            &json!("threshold"),
            &json!({"algorithm": "acme/scorer", "metric": "risk_score", "fn": "max", "window": "10s"}),
            &json!("10s"),
            &json!("0s"),
            &json!([{"level": "crit", "type": "greater", "value": 0.7}]),
        ),
        "{c}"
    );
    let check_id = c["id"].as_str().unwrap().to_string();

    // ---- The Slack endpoint, and its test ----
    b.click("#new-endpoint").await;
    b.find("#endpoint-dialog[data-ready='new']").await;
    b.fill("#endpoint-name", "Team channel").await;
    b.select("#endpoint-kind", "slack").await;
    assert_eq!(
        attr(&b, "#endpoint-slack-url", "type").await.as_deref(),
        Some("password"),
        "a webhook URL is a secret"
    );
    b.fill("#endpoint-slack-channel", CHANNEL).await;
    fits_and_is_named(&b, "the endpoint form").await;
    // Not a web address: the API says so next to the field, without repeating it.
    b.fill("#endpoint-slack-url", "ftp://files.example/s3cr3tw3bh00k")
        .await;
    b.click("#save-endpoint").await;
    let said = b.wait_text("#error-endpoint-url", |s| !s.is_empty()).await;
    assert!(
        said.contains("http://") && !said.contains("s3cr3t"),
        "{said}"
    );
    assert_eq!(
        attr(&b, "#endpoint-slack-url", "aria-invalid")
            .await
            .as_deref(),
        Some("true")
    );
    b.fill("#endpoint-slack-url", &slack.url).await;
    assert!(!b.displayed("#error-endpoint-url").await);
    b.click("#save-endpoint").await;
    let row = "#endpoints tr[data-endpoint-id]";
    b.wait_text(row, |s| {
        s.contains("Team channel") && s.contains("webhook URL set")
    })
    .await;
    let endpoint_id = attr(&b, row, "data-endpoint-id").await.unwrap();
    b.click(&format!("{row} button.test")).await;
    let verdict = b
        .wait_text(&format!("{row} output.verdict[data-accepted]"), |s| {
            !s.is_empty()
        })
        .await;
    assert!(verdict.starts_with("accepted"), "{verdict}");
    assert_eq!(
        attr(&b, &format!("{row} output.verdict"), "data-accepted")
            .await
            .as_deref(),
        Some("true")
    );
    let tests = slack.messages_with("test notification");
    assert_eq!(tests.len(), 1, "{:?}", slack.bodies());
    assert_slack_body(&tests[0], "good", &["Team channel", "nothing needs doing"]);
    b.screenshot("endpoint-tested").await;

    // Edited with the URL left empty, the endpoint keeps it: a second test still arrives.
    b.click(&format!("{row} button.edit")).await;
    b.find(&format!("#endpoint-dialog[data-ready='{endpoint_id}']"))
        .await;
    assert!(
        b.displayed("#endpoint-dialog .kind-fields[data-kind='slack'] .set-badge")
            .await,
        "the form says a webhook URL is stored"
    );
    assert_eq!(
        b.find("#endpoint-slack-url")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some(""),
        "the stored URL never comes back to the page"
    );
    b.fill("#endpoint-name", "Team channel (ML)").await;
    b.click("#save-endpoint").await;
    b.wait_text(row, |s| s.contains("Team channel (ML)")).await;
    b.click(&format!("{row} button.test")).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while slack.messages_with("test notification").len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            slack.bodies()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page_text =
        b.c.execute("return document.documentElement.outerHTML;", vec![])
            .await
            .unwrap();
    assert!(
        !page_text.as_str().unwrap().contains("s3cr3tw3bh00k"),
        "the webhook URL is never in the page"
    );

    // ---- The rule ----
    b.click("#new-rule").await;
    b.find("#rule-dialog[data-ready='new']").await;
    b.fill("#rule-name", "To the team").await;
    b.select("#rule-endpoint", &endpoint_id).await;
    // A repeat more often than the rule runs is refused, next to the field.
    b.fill("#rule-repeat_every", "10s").await;
    b.click("#save-rule").await;
    let said = b
        .wait_text("#error-rule-repeat_every", |s| !s.is_empty())
        .await;
    assert!(said.contains("1m"), "{said}");
    b.fill("#rule-repeat_every", "").await;
    // The form starts with the rule the seed needs: from any level to crit, from any to ok.
    assert_eq!(
        b.c.execute(
            "return [...document.querySelectorAll('#when-rows .when-row')].map(r => r.querySelector('.w-mode').value + ' ' + r.querySelector('.w-from').value + ' ' + r.querySelector('.w-to').value);",
            vec![]
        )
        .await
        .unwrap(),
        json!(["change any crit", "change any ok"])
    );
    fits_and_is_named(&b, "the rule form").await;
    b.click("#save-rule").await;
    b.wait_text("#rules tbody", |s| {
        s.contains("To the team") && s.contains("any → crit")
    })
    .await;
    let (_, rules) = t
        .admin(Method::GET, "/v1/admin/notification-rules", None)
        .await;
    let r = &rules["rules"][0];
    assert_eq!(
        (&r["endpoint"], &r["checks"], &r["when"]),
        (
            &json!(endpoint_id),
            &Value::Null,
            &json!([{"from": "any", "to": "crit"}, {"from": "any", "to": "ok"}])
        ),
        "{r}"
    );

    // ---- High risk: crit, one danger message naming the check ----
    let danger = calls_until(&t, &key, &slack, 0.92, "is crit").await;
    assert_slack_body(&danger, "danger", &[CHECK, "acme/scorer", "1.0.0", "0.92"]);
    let crit = format!(
        "#checks tr[data-check-id='{check_id}'] .series-level[data-series='acme/scorer 1.0.0'][data-level='crit']"
    );
    b.find(&crit).await;
    assert!(b.text(&crit).await.contains("since"));
    b.screenshot("crit").await;

    // ---- Low risk: the recovery ----
    let good = calls_until(&t, &key, &slack, 0.15, "is ok").await;
    assert_slack_body(&good, "good", &[CHECK, "acme/scorer", "1.0.0"]);
    b.find(&format!(
        "#checks tr[data-check-id='{check_id}'] .series-level[data-series='acme/scorer 1.0.0'][data-level='ok']"
    ))
    .await;
    // The history: both level changes, both notifications sent, once each.
    b.find("#statuses tbody tr[data-level='crit']").await;
    b.find("#statuses tbody tr[data-level='ok']").await;
    b.find("#notifications tbody tr[data-state='sent'][data-level='crit']")
        .await;
    b.find("#notifications tbody tr[data-state='sent'][data-level='ok']")
        .await;
    let history = b
        .c
        .execute(
            "return [...document.querySelectorAll('#notifications tbody tr')].map(r => [r.dataset.level, r.dataset.state, r.children[6].textContent]);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(history, json!([["ok", "sent", "1"], ["crit", "sent", "1"]]));
    let (_, sent) = t.admin(Method::GET, "/v1/admin/notifications", None).await;
    let states: Vec<(&str, &str, i64)> = sent["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["level"].as_str().unwrap(),
                n["state"].as_str().unwrap(),
                n["attempts"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("ok", "sent", 1), ("crit", "sent", 1)]);
    assert_eq!(
        slack.messages_with("is crit").len(),
        1,
        "{:?}",
        slack.bodies()
    );
    assert_eq!(
        slack.messages_with("is ok").len(),
        1,
        "{:?}",
        slack.bodies()
    );
    // The history filtered to the changes to crit: one status, one notification.
    b.select("#history-level", "crit").await;
    b.wait_js(
        "the history of the changes to crit",
        "const s = [...document.querySelectorAll('#statuses tbody tr')].map(r => r.dataset.level);
         const n = [...document.querySelectorAll('#notifications tbody tr')].map(r => r.dataset.level);
         return s.join() === 'crit' && n.join() === 'crit' || null;",
    )
    .await;
    b.select("#history-check", &check_id).await;
    b.select("#history-level", "").await;
    b.find("#statuses tbody tr[data-level='ok']").await;
    b.c.set_window_size(1280, 1900).await.unwrap();
    b.screenshot("page").await;

    // ---- The dashboard's chart: the threshold, and where the level changed ----
    b.c.set_window_size(1280, 1000).await.unwrap();
    b.goto("/admin/dashboards/default:acme%2Fscorer").await;
    let chart = ".cell[data-index='0'][data-state='ready'] .chart[data-check-marks]";
    b.find(chart).await;
    assert_eq!(
        attr(&b, chart, "data-check-thresholds").await.as_deref(),
        Some("crit 0.7")
    );
    let marks = attr(&b, chart, "data-check-marks").await.unwrap();
    assert_eq!(marks, "1.0.0 crit, 1.0.0 ok", "{marks}");
    b.screenshot("dashboard").await;

    // ---- Phone width ----
    b.c.set_window_size(390, 844).await.unwrap();
    b.goto("/admin/alerts").await;
    b.find(&format!(
        "#checks tr[data-check-id='{check_id}'] .series-level"
    ))
    .await;
    fits_and_is_named(&b, "the page at phone width").await;
    b.screenshot("phone").await;
    b.click(&format!(
        "#checks tr[data-check-id='{check_id}'] button.edit"
    ))
    .await;
    b.find(&format!("#check-dialog[data-ready='{check_id}']"))
        .await;
    // The preview of the saved check now has windows of both levels, oldest first.
    let levels = b
        .wait_js(
            "the preview's crit and ok windows",
            "const s = document.querySelector(\"#check-preview[data-state='ready'] ol.strip[data-series='acme/scorer 1.0.0']\");
             const l = s ? s.dataset.levels : '';
             return / crit.* ok/.test(' ' + l) ? l : null;",
        )
        .await;
    assert!(!levels.as_str().unwrap().contains("warn"), "{levels}");
    fits_and_is_named(&b, "the check form at phone width").await;
    b.c.execute(
        "document.getElementById('check-preview').scrollIntoView();",
        vec![],
    )
    .await
    .unwrap();
    b.screenshot("phone-check").await;

    b.close().await;
    t.stop().await;
}
