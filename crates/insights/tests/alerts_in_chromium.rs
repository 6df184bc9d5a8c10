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
//! A second test goes through every form once more: an HTTP endpoint (method, a header, bearer
//! auth, a body template), email, PagerDuty and Alertmanager endpoints, each read back from the
//! API; edits that leave the secrets empty keep them (the HTTP test message still carries the
//! header and the token); a deadman check with a tag and a message; a rule with chosen checks,
//! an `is` condition, a tag condition, a repeat, a limit and a message; an endpoint in use
//! cannot be deleted, and says by which rule.
//!
//! A third restarts the server on a data directory that lost its `secret.key`: the Slack
//! endpoint whose URL was sealed with it is listed on the page as one the server cannot read,
//! without its URL, and saved again from its form it sends once more.
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
use axum::http::{HeaderMap, Uri};
use common::browser::{Browser, PATIENCE};
use common::{TestServer, report};
use reqwest::Method;
use serde_json::{Value, json};

const CHECK: &str = "risk_score CRIT above 0.70";
const CHANNEL: &str = "#ml-alerts";
/// The webhook's path: a secret, as a Slack webhook URL is.
const HOOK: &str = "/services/T0INSIGHTS/B0ALERTS/s3cr3tw3bh00k";

/// What the receiver got: each request's path, headers (lowercase names) and body (JSON, or
/// `{"not_json", "body"}`), in order.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Value, Value)>>>);

/// A local HTTP receiver; it stands in for Slack's webhook server (and, in the forms' test,
/// for any HTTP endpoint) and answers 200 `ok` to everything.
struct SlackReceiver {
    /// `http://127.0.0.1:port`.
    base: String,
    /// The webhook URL: the base and [`HOOK`].
    url: String,
    got: Received,
    server: tokio::task::JoinHandle<()>,
}

async fn record(
    State(got): State<Received>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let json = serde_json::from_slice(&body).unwrap_or_else(
        |e| json!({"not_json": e.to_string(), "body": String::from_utf8_lossy(&body)}),
    );
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), json!(v.to_str().unwrap_or("?"))))
        .collect();
    got.0
        .lock()
        .unwrap()
        .push((uri.path().to_string(), Value::Object(headers), json));
    // What Slack answers an incoming webhook that it accepted.
    "ok"
}

impl SlackReceiver {
    async fn start() -> SlackReceiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = format!("{base}{HOOK}");
        let got = Received::default();
        let app = Router::new().fallback(record).with_state(got.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        SlackReceiver {
            base,
            url,
            got,
            server,
        }
    }

    fn bodies(&self) -> Vec<Value> {
        let got = self.got.0.lock().unwrap();
        for (path, _, _) in got.iter() {
            assert_eq!(path, HOOK, "every message goes to the webhook's path");
        }
        got.iter().map(|(_, _, b)| b.clone()).collect()
    }

    /// Every request so far: path, headers, body.
    fn requests(&self) -> Vec<(String, Value, Value)> {
        self.got.0.lock().unwrap().clone()
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
    b.on(css, async |e| e.attr(name).await).await
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

/// The endpoint with `name` as the API shows it.
async fn endpoint_named(t: &TestServer, name: &str) -> Value {
    let (s, list) = t
        .admin(Method::GET, "/v1/admin/notification-endpoints", None)
        .await;
    assert_eq!(s, 200, "{list}");
    list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no endpoint {name}: {list}"))
        .clone()
}

/// Opens the endpoint form (new, or the row's Edit), waiting until it is ready.
async fn open_endpoint(b: &Browser, id: Option<&str>) {
    match id {
        None => b.click("#new-endpoint").await,
        Some(id) => {
            b.click(&format!(
                "#endpoints tr[data-endpoint-id='{id}'] button.edit"
            ))
            .await
        }
    }
    b.find(&format!(
        "#endpoint-dialog[data-ready='{}']",
        id.unwrap_or("new")
    ))
    .await;
}

/// Saves the endpoint form and waits until the list shows `name`.
async fn save_endpoint(b: &Browser, name: &str) {
    b.click("#save-endpoint").await;
    b.wait_text("#endpoints tbody", |s| s.contains(name)).await;
    assert!(!b.displayed("#endpoint-dialog").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_kind_a_deadman_check_and_a_full_rule_are_made_in_the_forms_and_secrets_survive_an_edit()
 {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let receiver = SlackReceiver::start().await;
    let b = Browser::open(&t.url, "alerts-forms").await;
    b.sign_in("/admin/alerts").await;
    b.find("#checks[data-refreshes]").await;

    // ---- HTTP: URL, method, a header, bearer auth, a body template ----
    open_endpoint(&b, None).await;
    b.fill("#endpoint-name", "Hook").await;
    b.select("#endpoint-kind", "http").await;
    b.fill(
        "#endpoint-http-url",
        &format!("{}/in?token=S3CRET1", receiver.base),
    )
    .await;
    b.select("#endpoint-http-method", "PUT").await;
    b.click("#add-header").await;
    b.fill("#endpoint-header-0-name", "X-Api-Key").await;
    b.fill("#endpoint-header-0-value", "S3CRET2").await;
    b.select("#endpoint-auth-type", "bearer").await;
    b.fill("#endpoint-auth-token", "S3CRET3").await;
    b.fill("#endpoint-http-body_template", "{{check}} is {{level}}")
        .await;
    fits_and_is_named(&b, "the HTTP endpoint form").await;
    save_endpoint(&b, "Hook").await;
    let hook = endpoint_named(&t, "Hook").await;
    assert_eq!(
        (
            &hook["kind"],
            &hook["method"],
            &hook["headers_set"],
            &hook["auth"],
            &hook["body_template"],
            &hook["url_set"]
        ),
        (
            &json!("http"),
            &json!("PUT"),
            &json!(["X-Api-Key"]),
            &json!({"type": "bearer", "token_set": true}),
            &json!("{{check}} is {{level}}"),
            &json!(true)
        ),
        "{hook}"
    );
    let hook_id = hook["id"].as_str().unwrap().to_string();
    // Edited with every secret left empty: the method changes, the secrets stay, and a test
    // message still carries them.
    open_endpoint(&b, Some(&hook_id)).await;
    assert_eq!(
        b.find("#endpoint-header-0-name")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("X-Api-Key")
    );
    assert!(
        b.displayed("#endpoint-dialog .set-badge[data-for='auth.token']")
            .await
    );
    assert!(
        b.find("#endpoint-kind")
            .await
            .prop("disabled")
            .await
            .unwrap()
            .as_deref()
            == Some("true")
    );
    b.select("#endpoint-http-method", "POST").await;
    save_endpoint(&b, "Hook").await;
    let hook = endpoint_named(&t, "Hook").await;
    assert_eq!(
        (&hook["method"], &hook["headers_set"], &hook["auth"]),
        (
            &json!("POST"),
            &json!(["X-Api-Key"]),
            &json!({"type": "bearer", "token_set": true})
        ),
        "{hook}"
    );
    let row = format!("#endpoints tr[data-endpoint-id='{hook_id}']");
    b.click(&format!("{row} button.test")).await;
    let verdict = b
        .wait_text(&format!("{row} output.verdict[data-accepted]"), |s| {
            !s.is_empty()
        })
        .await;
    assert!(verdict.starts_with("accepted"), "{verdict}");
    let (path, headers, _) = receiver.requests().pop().expect("the test message");
    assert_eq!(path, "/in");
    assert_eq!(headers["x-api-key"], "S3CRET2", "{headers}");
    assert_eq!(headers["authorization"], "Bearer S3CRET3", "{headers}");

    // ---- Email: credentials, addresses ----
    open_endpoint(&b, None).await;
    b.fill("#endpoint-name", "Mail").await;
    b.select("#endpoint-kind", "email").await;
    b.fill("#endpoint-email-host", "127.0.0.1").await;
    b.fill("#endpoint-email-port", "2525").await;
    b.select("#endpoint-email-tls", "none").await;
    b.fill("#endpoint-email-username", "alerts").await;
    b.fill("#endpoint-email-password", "S3CRET4").await;
    b.fill("#endpoint-email-from", "insights@example.com").await;
    b.fill("#endpoint-email-to", "ml@example.com, oncall@example.com")
        .await;
    fits_and_is_named(&b, "the email endpoint form").await;
    save_endpoint(&b, "Mail").await;
    let mail = endpoint_named(&t, "Mail").await;
    let mail_id = mail["id"].as_str().unwrap().to_string();
    open_endpoint(&b, Some(&mail_id)).await;
    b.fill("#endpoint-email-port", "2526").await;
    save_endpoint(&b, "Mail").await;
    let mail = endpoint_named(&t, "Mail").await;
    assert_eq!(
        (
            &mail["host"],
            &mail["port"],
            &mail["tls"],
            &mail["username"],
            &mail["password_set"],
            &mail["from"],
            &mail["to"]
        ),
        (
            &json!("127.0.0.1"),
            &json!(2526),
            &json!("none"),
            &json!("alerts"),
            &json!(true),
            &json!("insights@example.com"),
            &json!(["ml@example.com", "oncall@example.com"])
        ),
        "{mail}"
    );

    // ---- PagerDuty and Alertmanager ----
    open_endpoint(&b, None).await;
    b.fill("#endpoint-name", "Pager").await;
    b.select("#endpoint-kind", "pagerduty").await;
    b.fill("#endpoint-pagerduty-routing_key", "S3CRET5").await;
    b.fill(
        "#endpoint-pagerduty-url",
        &format!("{}/v2/enqueue", receiver.base),
    )
    .await;
    save_endpoint(&b, "Pager").await;
    let pager = endpoint_named(&t, "Pager").await;
    assert_eq!(
        (&pager["routing_key_set"], &pager["url"]),
        (
            &json!(true),
            &json!(format!("{}/v2/enqueue", receiver.base))
        ),
        "{pager}"
    );
    open_endpoint(&b, None).await;
    b.fill("#endpoint-name", "AM").await;
    b.select("#endpoint-kind", "alertmanager").await;
    b.fill("#endpoint-alertmanager-url", "http://127.0.0.1:9093")
        .await;
    save_endpoint(&b, "AM").await;
    assert_eq!(
        endpoint_named(&t, "AM").await["url"],
        "http://127.0.0.1:9093"
    );
    let page =
        b.c.execute("return document.documentElement.outerHTML;", vec![])
            .await
            .unwrap();
    assert!(
        !page.as_str().unwrap().contains("S3CRET"),
        "no secret is ever in the page"
    );

    // ---- A deadman check ----
    b.click("#new-check").await;
    b.find("#check-dialog[data-ready='new']").await;
    b.fill("#check-name", "Scorer silent").await;
    b.click("#check-kind-deadman").await;
    assert!(!b.displayed("#check-query-metric").await);
    b.fill("#check-time_since", "1m").await;
    b.select("#check-level", "warn").await;
    b.fill("#check-every", "30s").await;
    b.click("#add-tag").await;
    b.fill("#check-tags-0-key", "team").await;
    b.fill("#check-tags-0-value", "ml").await;
    b.fill("#check-message", "{{check}}: {{tags.team}} {{since}}")
        .await;
    b.wait_text("#check-preview", |s| s.contains("no windows"))
        .await;
    fits_and_is_named(&b, "the deadman check form").await;
    b.click("#save-check").await;
    b.wait_text("#checks tbody", |s| s.contains("Scorer silent"))
        .await;
    let (_, checks) = t.admin(Method::GET, "/v1/admin/checks", None).await;
    let c = &checks["checks"][0];
    assert_eq!(
        (
            &c["kind"],
            &c["query"],
            &c["time_since"],
            &c["level"],
            &c["every"],
            &c["tags"],
            &c["message"]
        ),
        (
            &json!("deadman"),
            &json!({"algorithm": "acme/scorer"}),
            &json!("1m"),
            &json!("warn"),
            &json!("30s"),
            &json!({"team": "ml"}),
            &json!("{{check}}: {{tags.team}} {{since}}")
        ),
        "{c}"
    );
    let check_id = c["id"].as_str().unwrap().to_string();

    // ---- A rule with every option ----
    b.click("#new-rule").await;
    b.find("#rule-dialog[data-ready='new']").await;
    b.fill("#rule-name", "Pager for ML").await;
    b.select("#rule-endpoint", pager["id"].as_str().unwrap())
        .await;
    b.click("#rule-check-list input[type=checkbox]").await;
    // Only the first condition, as "is warn".
    b.click("#when-rows .when-row:nth-child(2) .remove-row")
        .await;
    b.select("#rule-when-0-mode", "is").await;
    b.select("#rule-when-0-is", "warn").await;
    b.click("#add-rule-tag").await;
    b.fill("#rule-tags-0-key", "team").await;
    b.select("#rule-tags-0-op", "regex").await;
    b.fill("#rule-tags-0-value", "^ml").await;
    b.fill("#rule-repeat_every", "1h").await;
    b.fill("#rule-limit-count", "5").await;
    b.fill("#rule-limit-every", "1h").await;
    b.fill("#rule-message", "{{rule}}: {{check}}").await;
    fits_and_is_named(&b, "the full rule form").await;
    b.click("#save-rule").await;
    b.wait_text("#rules tbody", |s| s.contains("Pager for ML"))
        .await;
    let (_, rules) = t
        .admin(Method::GET, "/v1/admin/notification-rules", None)
        .await;
    let r = &rules["rules"][0];
    assert_eq!(
        (
            &r["endpoint"],
            &r["checks"],
            &r["when"],
            &r["tags"],
            &r["repeat_every"],
            &r["limit"],
            &r["message"]
        ),
        (
            &pager["id"],
            &json!([check_id]),
            &json!([{"is": "warn"}]),
            &json!([{"key": "team", "op": "regex", "value": "^ml"}]),
            &json!("1h"),
            &json!({"count": 5, "every": "1h"}),
            &json!("{{rule}}: {{check}}")
        ),
        "{r}"
    );
    let rule_id = r["id"].as_str().unwrap().to_string();

    // ---- Deleting: an endpoint in use is refused, in words; then the rule, then it ----
    b.c.execute("window.confirm = () => true;", vec![])
        .await
        .unwrap();
    let pager_row = format!(
        "#endpoints tr[data-endpoint-id='{}']",
        pager["id"].as_str().unwrap()
    );
    b.click(&format!("{pager_row} button.remove")).await;
    let said = b.wait_text("#page-error", |s| !s.is_empty()).await;
    assert!(said.contains("Pager for ML"), "{said}");
    b.click(&format!(
        "#rules tr[data-rule-id='{rule_id}'] button.remove"
    ))
    .await;
    b.wait_js(
        "the rule gone",
        &format!(
            "return !document.querySelector(\"#rules tr[data-rule-id='{rule_id}']\") || null;"
        ),
    )
    .await;
    b.click(&format!("{pager_row} button.remove")).await;
    b.wait_js(
        "the endpoint gone",
        &format!("return !document.querySelector(\"{pager_row}\") || null;"),
    )
    .await;
    assert_eq!(
        t.admin(Method::GET, "/v1/admin/notification-endpoints", None)
            .await
            .1["endpoints"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    b.screenshot("forms").await;
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_the_server_cannot_read_back_is_shown_on_the_page_and_mended_in_its_form() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let receiver = SlackReceiver::start().await;
    let (s, made) = t
        .admin(
            Method::POST,
            "/v1/admin/notification-endpoints",
            Some(json!({"name": "Team", "kind": "slack", "url": receiver.url})),
        )
        .await;
    assert_eq!(s, 201, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    t.stop().await;

    // The data directory comes back without its secret.key (a backup that left it out): the
    // server starts all the same (it used to refuse to), and says what it cannot read.
    std::fs::remove_file(dir.path().join("secret.key")).unwrap();
    let t = TestServer::start(dir.path()).await;
    let b = Browser::open(&t.url, "alerts-unreadable").await;
    b.sign_in("/admin/alerts").await;
    let shown = b.wait_text("#unreadable", |s| s.contains("Team")).await;
    assert!(shown.contains("secret.key"), "{shown}");
    assert!(!shown.contains(HOOK), "no secret on the page: {shown}");
    assert!(b.displayed("#no-endpoints").await, "no readable endpoint");
    b.screenshot("unreadable").await;

    // Edit opens its form with its name and kind; saved with the webhook URL typed again, it is
    // an endpoint again, and its Test reaches the receiver.
    b.click(&format!(
        "#unreadable li[data-unreadable-id='{id}'] button.edit"
    ))
    .await;
    b.find(&format!("#endpoint-dialog[data-ready='{id}']"))
        .await;
    b.fill("#endpoint-slack-url", &receiver.url).await;
    save_endpoint(&b, "Team").await;
    b.wait_js(
        "the unreadable list to go",
        "return document.getElementById('unreadable').hidden",
    )
    .await;
    let e = endpoint_named(&t, "Team").await;
    assert_eq!((&e["id"], &e["url_set"]), (&json!(id), &json!(true)), "{e}");
    let (s, test) = t
        .admin(
            Method::POST,
            &format!("/v1/admin/notification-endpoints/{id}/test"),
            None,
        )
        .await;
    assert_eq!((s, &test["accepted"]), (200, &json!(true)), "{test}");
    assert_eq!(receiver.bodies().len(), 1);

    b.close().await;
    t.stop().await;
}
