//! Checks, rules and the outbox together, on a real series store and a real alerts database,
//! under a clock of ours (the store's `ManualClock`: nothing here waits for time to pass).
//! Notifications go to a local HTTP receiver through the `http` endpoint kind.
//!
//! Each InfluxDB 2 failure listed in MONITORING.md §2 has a regression test here, named after
//! the issue.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use insights_alerts::{
    Alerts, AlertsConfig, Catalog, ExpectedSeries, NotificationFilter, StatusFilter,
};
use insights_series::{AlgorithmPath, ManualClock, SeriesConfig, SeriesStore};
use insights_store::SecretBox;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

#[derive(Default)]
struct Published(Mutex<Vec<ExpectedSeries>>);

impl Catalog for Published {
    fn expected(&self) -> Vec<ExpectedSeries> {
        self.0.lock().unwrap().clone()
    }
}

/// A receiver that records every request body and answers `status`.
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    headers: Arc<Mutex<Vec<axum::http::HeaderMap>>>,
    status: Arc<AtomicU16>,
    _task: tokio::task::JoinHandle<()>,
}

async fn receiver() -> Receiver {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let headers = Arc::new(Mutex::new(Vec::new()));
    let status = Arc::new(AtomicU16::new(200));
    let (b, h, s) = (bodies.clone(), headers.clone(), status.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::any(move |hm: axum::http::HeaderMap, body: String| {
            let (b, h, s) = (b.clone(), h.clone(), s.clone());
            async move {
                let code = s.load(Ordering::SeqCst);
                if code == 200 {
                    b.lock()
                        .unwrap()
                        .push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
                    h.lock().unwrap().push(hm);
                }
                axum::http::StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        url,
        bodies,
        headers,
        status,
        _task: task,
    }
}

struct World {
    dir: tempfile::TempDir,
    clock: ManualClock,
    series: Arc<SeriesStore>,
    catalog: Arc<Published>,
    alerts: Arc<Alerts>,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let series = Arc::new(
        SeriesStore::open(
            dir.path().join("series"),
            SeriesConfig {
                clock: clock.clone().into(),
                ..SeriesConfig::default()
            },
        )
        .unwrap(),
    );
    World::opened(dir, clock, series, Arc::new(Published::default()))
}

fn open(
    dir: &tempfile::TempDir,
    clock: &ManualClock,
    series: &Arc<SeriesStore>,
    catalog: &Arc<Published>,
    cfg: AlertsConfig,
) -> Arc<Alerts> {
    Alerts::open(
        dir.path(),
        cfg,
        series.clone(),
        catalog.clone(),
        Arc::new(SecretBox::load_or_create(dir.path()).unwrap()),
        clock.clone().into(),
    )
    .unwrap()
}

impl World {
    /// One payload of `owner/name` `version` at `t` with `risk_score`.
    fn payload(&self, version: &str, t: OffsetDateTime, risk: f64) {
        // The store refuses payloads from its future: they arrive when they are made.
        if t > self.clock.now() {
            self.clock.set(t);
        }
        let t = t
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
            ))
            .unwrap();
        let json = format!(
            r#"{{"risk_score":{risk},"duration_milliseconds":4,"algorithm_owner":"demo","algorithm_name":"credit","algorithm_version":"{version}","request_id":"r","time":"{t}","session_id":"s"}}"#
        );
        let r = self.series.ingest(&json, false).unwrap();
        assert_eq!(r.accepted, 1, "{json}");
    }

    /// Runs `check` at `t` (moving the clock there first).
    fn run(&self, check: &str, t: OffsetDateTime) -> insights_alerts::RunReport {
        self.clock.set(t);
        self.alerts.evaluate_at(check, t).unwrap()
    }

    fn check(&self, body: Value) -> String {
        self.alerts.create_check(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn endpoint(&self, url: &str) -> String {
        self.alerts
            .create_endpoint(&json!({"name": "hook", "kind": "http", "url": url}))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn rule(&self, body: Value) -> String {
        self.alerts.create_rule(&body).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn notifications(&self) -> Vec<Value> {
        let mut n = self
            .alerts
            .notifications(&NotificationFilter {
                limit: 1000,
                ..Default::default()
            })
            .unwrap()["notifications"]
            .as_array()
            .unwrap()
            .clone();
        n.reverse();
        n
    }

    fn changes(&self) -> Vec<(String, String)> {
        let n = self.notifications();
        n.iter()
            .map(|n| {
                (
                    n["previous_level"].as_str().unwrap().to_string(),
                    n["level"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn m(minutes: i64) -> time::Duration {
    time::Duration::minutes(minutes)
}

fn risk_check(extra: Value) -> Value {
    let mut c = json!({
        "name": "Risk score high", "kind": "threshold",
        "query": {"algorithm": "demo/credit", "metric": "risk_score", "fn": "mean", "window": "1m"},
        "every": "1m",
        "thresholds": [{"level": "crit", "type": "greater", "value": 0.7}],
        "tags": {"team": "ml"}
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

#[tokio::test]
async fn a_transition_is_notified_once_however_runs_line_up_influxdb_17809_19711() {
    let w = world();
    let r = receiver().await;
    let check = w.check(risk_check(json!({})));
    let endpoint = w.endpoint(&r.url);
    w.rule(json!({"name": "r", "endpoint": endpoint, "every": "10m",
                  "when": [{"from": "ok", "to": "crit"}, {"from": "any", "to": "ok"}]}));
    // High for three minutes, then low; the rule's every (10m) and the check's (1m) do not
    // line up, which is where InfluxDB misses or repeats transitions.
    for i in 0..3 {
        w.payload("1.0.0", T0 + m(i) + time::Duration::seconds(30), 0.9);
    }
    w.payload("1.0.0", T0 + m(3) + time::Duration::seconds(30), 0.1);
    for i in 1..=5 {
        w.run(&check, T0 + m(i));
    }
    assert_eq!(
        w.changes(),
        [
            ("ok".to_string(), "crit".to_string()),
            ("crit".into(), "ok".into())
        ]
    );
    let statuses = w
        .alerts
        .statuses(&StatusFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        statuses["statuses"].as_array().unwrap().len(),
        2,
        "{statuses}"
    );
    // Delivered, each once, in order.
    w.alerts.deliver_due().await.unwrap();
    let bodies = r.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(bodies[0]["level"], "crit");
    assert_eq!(bodies[0]["_version"], 1);
    assert_eq!(bodies[1]["level"], "ok");
    let ids: Vec<_> = r
        .headers
        .lock()
        .unwrap()
        .iter()
        .map(|h| h["idempotency-key"].to_str().unwrap().to_string())
        .collect();
    assert_ne!(ids[0], ids[1]);
    assert!(w.notifications().iter().all(|n| n["state"] == "sent"));
}

#[tokio::test]
async fn is_crit_repeats_only_every_repeat_every_and_limit_is_enforced_influxdb_22667() {
    let w = world();
    let r = receiver().await;
    let check = w.check(risk_check(json!({"query": {"algorithm": "demo/credit", "metric": "risk_score", "fn": "max", "window": "1m"}})));
    let endpoint = w.endpoint(&r.url);
    let rule = w.rule(
        json!({"name": "r", "endpoint": endpoint, "when": [{"is": "crit"}], "repeat_every": "30m"}),
    );
    for i in 0..65 {
        w.payload("1.0.0", T0 + m(i) + time::Duration::seconds(1), 0.95);
        w.run(&check, T0 + m(i + 1));
    }
    // Entering crit at 12:01, then at 12:31 and 13:01: three, not 65.
    assert_eq!(w.notifications().len(), 3, "{:?}", w.notifications());

    // A limit of 2 an hour over 4 versions going crit at once: 2 sent, 2 suppressed, counted.
    w.alerts
        .update_rule(&rule, &json!({"name": "r", "endpoint": endpoint, "when": [{"is": "crit"}], "limit": {"count": 2, "every": "1h"}}))
        .unwrap();
    let start = T0 + m(200);
    for v in ["2.0.0", "3.0.0", "4.0.0", "5.0.0"] {
        w.payload(v, start + time::Duration::seconds(1), 0.99);
    }
    let report = w.run(&check, start + m(1));
    // The three sent before are more than an hour old: they do not count.
    assert_eq!(
        (report.changes, report.notifications, report.suppressed),
        (4, 2, 2),
        "{report:?}"
    );
    let shown = w.alerts.rule(&rule).unwrap();
    assert_eq!(shown["suppressed"], 2);
    assert_eq!(w.alerts.rules().unwrap()["rules"][0]["suppressed"], 2);
    let only = w
        .alerts
        .notifications(&NotificationFilter {
            state: Some("suppressed".into()),
            level: Some(insights_alerts::Level::Crit),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(only["notifications"].as_array().unwrap().len(), 2, "{only}");
    let states: Vec<_> = w
        .notifications()
        .iter()
        .map(|n| n["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "suppressed").count(),
        2,
        "{states:?}"
    );
}

#[tokio::test]
async fn the_window_is_independent_of_every_influxdb_17439() {
    let w = world();
    let check = w.check(risk_check(json!({"query": {"algorithm": "demo/credit", "metric": "risk_score", "fn": "mean", "window": "5m"}})));
    // One high value five minutes back, four low ones after it: mean over 5 m = 0.28.
    w.payload("1.0.0", T0 + time::Duration::seconds(5), 1.0);
    for i in 1..5 {
        w.payload("1.0.0", T0 + m(i) + time::Duration::seconds(5), 0.1);
    }
    w.run(&check, T0 + m(5));
    let c = w.alerts.check(&check).unwrap();
    let value = c["series"][0]["value"].as_f64().unwrap();
    assert!((value - 0.28).abs() < 1e-9, "{c}");
    assert_eq!(c["series"][0]["level"], "ok");
    // A 1-minute window (InfluxDB's forced one) would have seen only 0.1 or only 1.0.
}

#[tokio::test]
async fn tag_rules_do_not_equal_and_regex_influxdb_23706() {
    let w = world();
    let r = receiver().await;
    let check = w.check(risk_check(json!({})));
    let endpoint = w.endpoint(&r.url);
    w.rule(
        json!({"name": "r", "endpoint": endpoint, "when": [{"from": "any", "to": "crit"}],
                  "tags": [{"key": "team", "op": "not_equal", "value": "ops"},
                           {"key": "version", "op": "regex", "value": "^1\\."},
                           {"key": "version", "op": "not_regex", "value": "-rc"}]}),
    );
    for v in ["1.0.0", "1.1.0-rc.1", "2.0.0"] {
        w.payload(v, T0 + time::Duration::seconds(5), 0.9);
    }
    let report = w.run(&check, T0 + m(1));
    assert_eq!(report.changes, 3);
    let n = w.notifications();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["version"], "1.0.0");
}

#[tokio::test]
async fn a_version_that_never_reported_is_dead_and_stays_dead_until_it_reports_influxdb_20282_23118()
 {
    let w = world();
    w.catalog.0.lock().unwrap().push(ExpectedSeries {
        algorithm: AlgorithmPath::new("demo", "credit"),
        version: "1.0.0".into(),
        since: T0,
    });
    let check = w.check(json!({"name": "silent", "kind": "deadman", "query": {"algorithm": "*"}, "every": "1m", "time_since": "5m"}));
    w.run(&check, T0 + m(4));
    assert_eq!(w.alerts.check(&check).unwrap()["series"][0]["level"], "ok");
    w.run(&check, T0 + m(5));
    assert_eq!(
        w.alerts.check(&check).unwrap()["series"][0]["level"],
        "crit"
    );
    // Hours later it is still dead (InfluxDB drops a series past its staleTime).
    w.run(&check, T0 + m(600));
    let c = w.alerts.check(&check).unwrap();
    assert_eq!(c["series"][0]["level"], "crit");
    assert_eq!(c["series"][0]["since"], "2026-12-01T12:05:00Z");
    // It reports: ok at the next run.
    w.payload("1.0.0", T0 + m(600) + time::Duration::seconds(10), 0.2);
    w.run(&check, T0 + m(601));
    assert_eq!(w.alerts.check(&check).unwrap()["series"][0]["level"], "ok");
}

#[tokio::test]
async fn checks_states_and_the_outbox_survive_a_restart_influxdb_25040() {
    let w = world();
    let r = receiver().await;
    r.status.store(503, Ordering::SeqCst);
    let check = w.check(risk_check(json!({})));
    let endpoint = w.endpoint(&r.url);
    w.rule(json!({"name": "r", "endpoint": endpoint, "when": [{"from": "any", "to": "crit"}, {"from": "any", "to": "ok"}]}));
    w.payload("1.0.0", T0 + time::Duration::seconds(5), 0.9);
    w.run(&check, T0 + m(1));
    w.alerts.deliver_due().await.unwrap();
    assert_eq!(w.notifications()[0]["state"], "retrying");
    // A restart between the transition and its delivery: nothing to re-save.
    let w = w.restart(|_| {});
    assert_eq!(
        w.alerts.checks().unwrap()["checks"][0]["series"][0]["level"],
        "crit"
    );
    r.status.store(200, Ordering::SeqCst);
    w.clock.advance(std::time::Duration::from_secs(60));
    w.alerts.deliver_due().await.unwrap();
    assert_eq!(r.bodies.lock().unwrap().len(), 1);
    // The stored state is the previous level: the recovery after the restart is a change.
    w.payload("1.0.0", T0 + m(2) + time::Duration::seconds(5), 0.1);
    w.run(&check, T0 + m(3));
    w.alerts.deliver_due().await.unwrap();
    let bodies = r.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        (
            bodies[1]["previous_level"].as_str(),
            bodies[1]["level"].as_str()
        ),
        (Some("crit"), Some("ok"))
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_it_once_when_back_and_past_the_window_it_is_dropped() {
    let w = world();
    let r = receiver().await;
    r.status.store(500, Ordering::SeqCst);
    let check = w.check(risk_check(json!({})));
    let endpoint = w.endpoint(&r.url);
    w.rule(json!({"name": "r", "endpoint": endpoint, "when": [{"from": "any", "to": "crit"}, {"from": "any", "to": "ok"}]}));
    w.payload("1.0.0", T0 + time::Duration::seconds(5), 0.9);
    w.run(&check, T0 + m(1));
    for _ in 0..5 {
        w.alerts.deliver_due().await.unwrap();
        w.clock.advance(std::time::Duration::from_secs(60));
    }
    let n = w.notifications();
    assert_eq!(n[0]["state"], "retrying");
    assert!(n[0]["attempts"].as_i64().unwrap() >= 5, "{n:?}");
    assert!(
        n[0]["last_error"].as_str().unwrap().contains("500"),
        "{n:?}"
    );
    r.status.store(200, Ordering::SeqCst);
    w.clock.advance(std::time::Duration::from_secs(600));
    w.alerts.deliver_due().await.unwrap();
    w.alerts.deliver_due().await.unwrap();
    assert_eq!(r.bodies.lock().unwrap().len(), 1);
    assert_eq!(w.notifications()[0]["state"], "sent");

    // Down past the delivery window: dropped, with the reason.
    r.status.store(500, Ordering::SeqCst);
    w.payload("1.0.0", w.clock.now() + time::Duration::seconds(5), 0.1);
    let at = w.clock.now() + m(1);
    let at = at - time::Duration::seconds(at.second() as i64);
    w.run(&check, at);
    for _ in 0..30 {
        w.alerts.deliver_due().await.unwrap();
        w.clock.advance(std::time::Duration::from_secs(300));
    }
    let n = w.notifications();
    assert_eq!(n[1]["state"], "dropped", "{n:?}");
    assert!(
        n[1]["last_error"]
            .as_str()
            .unwrap()
            .starts_with("window_expired"),
        "{n:?}"
    );
    // A refusal that cannot succeed later drops at once.
    r.status.store(400, Ordering::SeqCst);
    w.payload("1.0.0", w.clock.now() + time::Duration::seconds(5), 0.9);
    let at = w.clock.now() + m(1);
    let at = at - time::Duration::seconds(at.second() as i64);
    w.run(&check, at);
    w.alerts.deliver_due().await.unwrap();
    let n = w.notifications();
    assert_eq!(n[2]["state"], "dropped", "{n:?}");
    assert!(
        n[2]["last_error"].as_str().unwrap().starts_with("rejected"),
        "{n:?}"
    );
    assert_eq!(n[2]["attempts"], 1);
}

#[tokio::test]
async fn a_level_must_hold_for_pending_for_and_recovery_is_at_once() {
    let w = world();
    let check = w.check(risk_check(json!({"pending_for": "2m"})));
    for i in 0..6 {
        w.payload(
            "1.0.0",
            T0 + m(i) + time::Duration::seconds(5),
            if i < 5 { 0.9 } else { 0.1 },
        );
    }
    let levels: Vec<String> = (1..=6)
        .map(|i| {
            w.run(&check, T0 + m(i));
            w.alerts.check(&check).unwrap()["series"][0]["level"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(levels, ["ok", "ok", "crit", "crit", "crit", "ok"]);
}

#[tokio::test]
async fn every_bad_field_is_named_and_references_are_checked() {
    let w = world();
    let e = w
        .alerts
        .create_rule(&json!({"name": "r", "endpoint": "nope", "checks": ["missing"], "when": [{"is": "crit"}]}))
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("endpoint") && text.contains("checks[0]"),
        "{text}"
    );
    let e = w
        .alerts
        .create_check(&risk_check(json!({"message": "{{check}} {{risk}}"})))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("message") && e.contains("`risk`"),
        "influxdb#15269: {e}"
    );
    let endpoint = w.endpoint("http://127.0.0.1:9/hook");
    w.rule(json!({"name": "uses it", "endpoint": endpoint, "when": [{"is": "crit"}]}));
    let e = w.alerts.delete_endpoint(&endpoint).unwrap_err().to_string();
    assert!(e.contains("uses it"), "{e}");
}

impl World {
    /// Alerting opened, with the defaults, on these parts.
    fn opened(
        dir: tempfile::TempDir,
        clock: ManualClock,
        series: Arc<SeriesStore>,
        catalog: Arc<Published>,
    ) -> World {
        let alerts = open(&dir, &clock, &series, &catalog, AlertsConfig::default());
        World {
            dir,
            clock,
            series,
            catalog,
            alerts,
        }
    }

    /// Closes alerting, runs `between` on the data directory, and opens it again.
    fn restart(self, between: impl FnOnce(&std::path::Path)) -> World {
        let World {
            dir,
            clock,
            series,
            catalog,
            alerts,
        } = self;
        drop(alerts);
        between(dir.path());
        World::opened(dir, clock, series, catalog)
    }
}

#[tokio::test]
async fn an_endpoint_whose_secrets_cannot_be_opened_is_listed_kept_and_mended_by_saving_it_again() {
    let w = world();
    let r = receiver().await;
    let check = w.check(risk_check(json!({})));
    let endpoint = w.endpoint(&r.url);
    w.rule(json!({"name": "r", "endpoint": endpoint, "when": [{"from": "any", "to": "crit"}]}));
    // The data directory comes back without its secret.key (a backup that left it out): a new
    // key is made, and the endpoint's sealed URL cannot be opened with it. Alerting used to
    // refuse to open, and with it the whole server to start.
    let w = w.restart(|dir| std::fs::remove_file(dir.join("secret.key")).unwrap());
    let listed = w.alerts.endpoints();
    assert_eq!(listed["endpoints"], json!([]), "{listed}");
    let unreadable = &listed["unreadable"][0];
    assert_eq!(
        (&unreadable["id"], &unreadable["name"], &unreadable["kind"]),
        (&json!(endpoint), &json!("hook"), &json!("http")),
        "{listed}"
    );
    assert!(
        unreadable["error"].as_str().unwrap().contains("secret.key"),
        "{listed}"
    );
    assert!(!listed.to_string().contains(&r.url), "no secret is shown");
    let one = w.alerts.endpoint(&endpoint).unwrap_err().to_string();
    assert!(one.contains("save it again"), "{one}");

    // The check and the rule still run; the rule's notification waits and says why.
    w.payload("1.0.0", T0 + time::Duration::seconds(5), 0.9);
    w.run(&check, T0 + m(1));
    w.alerts.deliver_due().await.unwrap();
    let n = w.notifications();
    assert_eq!(n.len(), 1, "{n:?}");
    assert_eq!(n[0]["state"], "retrying", "{n:?}");
    assert!(
        n[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("save the endpoint again"),
        "{n:?}"
    );
    assert!(r.bodies.lock().unwrap().is_empty());

    // Saved again with its URL, it is an endpoint again, the waiting notification goes, and it
    // reads back after another restart (sealed with the new key).
    w.alerts
        .update_endpoint(
            &endpoint,
            &json!({"name": "hook", "kind": "http", "url": r.url}),
        )
        .unwrap();
    assert_eq!(w.alerts.endpoints()["unreadable"], json!([]));
    w.clock.advance(std::time::Duration::from_secs(60));
    w.alerts.deliver_due().await.unwrap();
    assert_eq!(r.bodies.lock().unwrap().len(), 1);
    assert_eq!(w.notifications()[0]["state"], "sent");
    let w = w.restart(|_| {});
    assert_eq!(w.alerts.endpoints()["endpoints"][0]["id"], endpoint);
    assert_eq!(w.alerts.endpoints()["unreadable"], json!([]));
}

#[tokio::test]
async fn a_damaged_check_or_rule_is_listed_and_deleted_while_the_rest_runs() {
    let w = world();
    let r = receiver().await;
    let damaged = w.check(risk_check(json!({"name": "damaged"})));
    let check = w.check(risk_check(json!({})));
    let endpoint = w.endpoint(&r.url);
    let rule =
        w.rule(json!({"name": "r", "endpoint": endpoint, "when": [{"from": "any", "to": "crit"}]}));
    let w = w.restart(|dir| {
        let db = rusqlite::Connection::open(dir.join("alerts.sqlite")).unwrap();
        db.execute("UPDATE checks SET doc = '{\"name\": 3' WHERE id = ?1", [&damaged])
            .unwrap();
        // As a newer version might have written it: a kind this one does not know.
        db.execute(
            "UPDATE rules SET doc = json_set(doc, '$.when', json('[{\"from\": \"any\", \"to\": \"unknown\"}]')) WHERE id = ?1",
            [&rule],
        )
        .unwrap();
    });
    let checks = w.alerts.checks().unwrap();
    assert_eq!(checks["checks"].as_array().unwrap().len(), 1, "{checks}");
    assert_eq!(checks["unreadable"][0]["id"], damaged, "{checks}");
    assert!(
        checks["unreadable"][0]["error"]
            .as_str()
            .unwrap()
            .contains("not JSON"),
        "{checks}"
    );
    let rules = w.alerts.rules().unwrap();
    assert_eq!(rules["rules"], json!([]), "{rules}");
    assert_eq!(rules["unreadable"][0]["id"], rule, "{rules}");
    assert_eq!(rules["unreadable"][0]["name"], "r", "{rules}");

    // The readable check runs (with no rule to send it anywhere).
    w.payload("1.0.0", T0 + time::Duration::seconds(5), 0.9);
    assert_eq!(w.run(&check, T0 + m(1)).notifications, 0);
    assert_eq!(
        w.alerts.checks().unwrap()["checks"][0]["series"][0]["level"],
        "crit"
    );
    // Deleting the damaged ones removes them for good.
    w.alerts.delete_check(&damaged).unwrap();
    w.alerts.delete_rule(&rule).unwrap();
    assert_eq!(w.alerts.checks().unwrap()["unreadable"], json!([]));
    let w = w.restart(|_| {});
    assert_eq!(w.alerts.checks().unwrap()["unreadable"], json!([]));
    assert_eq!(w.alerts.rules().unwrap()["unreadable"], json!([]));
}
