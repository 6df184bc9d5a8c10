//! The Datadog sink against a local stand-in of the intake (`datadog_stand_in`: no real
//! Datadog is reachable from here), fault by fault: down then up (every payload delivered
//! once), 429 with `X-RateLimit-Reset`, 413 (split; a lone payload refused is dropped), 403
//! (nothing sent until the key changes), 400, a 202 listing errors, points past the hour.

mod datadog_stand_in;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datadog_stand_in::{Answer, Intake};
use insights_delivery::datadog::{DatadogRequest, DatadogSettings};
use insights_delivery::{
    DatadogConfig, DatadogDelivery, DatadogStatus, EncodedPayload, Outcome, PayloadSink,
};
use insights_payload::{AlgorithmRef, MetricSet, Payload, RequestId, SessionId};
use serde_json::json;

const KEY: &str = "0123456789abcdef0123456789abcdef";

fn config(dir: &std::path::Path) -> DatadogConfig {
    let mut c = DatadogConfig::new(dir.to_path_buf());
    c.backoff_min = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(200);
    c.request_timeout = Duration::from_secs(5);
    c
}

fn settings(url: &str, key: &str) -> DatadogSettings {
    serde_json::from_value::<DatadogRequest>(json!({
        "site": "datadoghq.com", "api_key": key, "url": url,
        "tags": ["env:test"], "legacy_id_tags": true,
    }))
    .unwrap()
    .validate(None)
    .unwrap()
}

/// A payload of `demo/credit` 1.0.0 with one metric (`risk_score` i.5), `time` `age` ago.
fn payload(i: usize, age: Duration) -> EncodedPayload {
    let mut metrics = MetricSet::new();
    let risk = serde_json::Number::from_f64(i as f64 + 0.5).unwrap();
    metrics.insert("risk_score", risk.into()).unwrap();
    EncodedPayload::from_payload(Payload {
        algorithm: AlgorithmRef {
            owner: "demo".into(),
            name: "credit".into(),
            version: "1.0.0".into(),
        },
        session_id: SessionId::new(),
        request_id: RequestId::new(),
        duration_milliseconds: i as u64,
        time: time::OffsetDateTime::now_utc() - age,
        metrics,
        status: None,
        failed: false,
    })
}

async fn write(sink: &DatadogDelivery, batch: Vec<EncodedPayload>) {
    let outcome = sink.write(Arc::from(batch)).await;
    assert!(matches!(outcome, Outcome::WillRetry), "{outcome:?}");
}

async fn wait_status(
    sink: &DatadogDelivery,
    what: &str,
    done: impl Fn(&DatadogStatus) -> bool,
) -> DatadogStatus {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = sink.status();
        if done(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// request_id → how many times its risk_score series was accepted.
fn accepted_ids(intake: &Intake) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for s in intake.accepted_series() {
        if s["metric"] == "algorithmia.risk_score" {
            let tag = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|t| t.as_str().unwrap().strip_prefix("request_id:"))
                .unwrap()
                .to_string();
            *ids.entry(tag).or_default() += 1;
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread")]
async fn down_then_up_delivers_every_payload_once() {
    // A port with nothing listening: the intake is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    assert!(matches!(
        sink.write(Arc::from(vec![payload(0, Duration::ZERO)]))
            .await,
        Outcome::Skipped
    ));
    sink.configure(Some(settings(&format!("http://{port}"), KEY)));
    for b in 0..5 {
        write(
            &sink,
            (b * 10..b * 10 + 10)
                .map(|i| payload(i, Duration::ZERO))
                .collect(),
        )
        .await;
    }
    let s = wait_status(&sink, "failing, unreachable", |s| {
        s.state == "failing" && s.waiting == 50
    })
    .await;
    assert_eq!(serde_json::to_value(s.problem).unwrap(), "unreachable");
    let intake = Intake::start_on(port, KEY).await;
    wait_status(&sink, "all delivered", |s| {
        s.delivered == 50 && s.waiting == 0
    })
    .await;
    let ids = accepted_ids(&intake);
    assert_eq!(ids.len(), 50);
    assert!(ids.values().all(|n| *n == 1), "{ids:?}");
    let s = sink.status();
    assert_eq!((s.state, s.dropped), ("connected", 0));
    sink.stop().await;
    intake.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_waits_for_the_rate_limit_reset_then_delivers() {
    let intake = Intake::start(KEY).await;
    intake.script([Answer {
        status: 429,
        headers: vec![("X-RateLimit-Reset", "1".into())],
        body: r#"{"errors":["Too many requests"]}"#.into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&intake.url(), KEY)));
    write(&sink, vec![payload(1, Duration::ZERO)]).await;
    let got = intake.wait_requests(2, 10).await;
    assert_eq!((got[0].status, got[1].status), (429, 202));
    let gap = got[1].at - got[0].at;
    // The backoff here is at most 200 ms: only the header explains a wait of a second.
    assert!(gap >= Duration::from_millis(950), "{gap:?}");
    wait_status(&sink, "delivered", |s| s.delivered == 1).await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retried_answers_back_off_and_a_refused_request_is_dropped() {
    let intake = Intake::start(KEY).await;
    intake.script([
        Answer::status(503),
        Answer::status(500),
        Answer::status(408),
        Answer {
            status: 400,
            headers: vec![],
            body: r#"{"errors":["bad"]}"#.into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&intake.url(), KEY)));
    write(&sink, vec![payload(1, Duration::ZERO)]).await;
    let s = wait_status(&sink, "dropped as rejected", |s| s.dropped == 1).await;
    assert_eq!(s.dropped_by_reason.get("rejected"), Some(&1));
    assert_eq!(serde_json::to_value(s.problem).unwrap(), "bad_request");
    let got = intake.received();
    assert_eq!(
        got.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 500, 408, 400]
    );
    // Backoff with jitter from 50 ms, doubling: each wait at least half the base.
    assert!(got[1].at - got[0].at >= Duration::from_millis(25));
    assert!(got[2].at - got[1].at >= Duration::from_millis(50));
    // The next payload goes on (a 400 is about a request, not the connection).
    write(&sink, vec![payload(2, Duration::ZERO)]).await;
    wait_status(&sink, "the next one delivered", |s| s.delivered == 1).await;
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_413_splits_and_a_lone_payload_too_large_is_dropped() {
    let intake = Intake::start(KEY).await;
    // Each payload is two series: more than 8 series (4 payloads) per request is "too large".
    intake.refuse_more_series_than(8);
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&intake.url(), KEY)));
    write(&sink, (0..40).map(|i| payload(i, Duration::ZERO)).collect()).await;
    wait_status(&sink, "all delivered", |s| s.delivered == 40).await;
    let ids = accepted_ids(&intake);
    assert_eq!(ids.len(), 40);
    assert!(ids.values().all(|n| *n == 1), "{ids:?}");
    let statuses: Vec<u16> = intake.received().iter().map(|r| r.status).collect();
    assert!(statuses.contains(&413), "{statuses:?}");
    assert_eq!(sink.status().dropped, 0);

    intake.refuse_more_series_than(1);
    write(&sink, vec![payload(99, Duration::ZERO)]).await;
    let s = wait_status(&sink, "dropped", |s| s.dropped == 1).await;
    assert_eq!(s.dropped_by_reason.get("rejected"), Some(&1));
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_key_holds_everything_until_the_key_changes() {
    let intake = Intake::start(KEY).await;
    intake.script([Answer {
        status: 403,
        headers: vec![],
        body: r#"{"errors":["Forbidden"]}"#.into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&intake.url(), "badbadbad")));
    write(&sink, vec![payload(1, Duration::ZERO)]).await;
    let s = wait_status(&sink, "key refused", |s| s.state == "failing").await;
    assert_eq!(serde_json::to_value(s.problem).unwrap(), "key_refused");
    assert!(!format!("{s:?}").contains("badbadbad"));
    // More payloads: none is sent with the refused key (not retried), none dropped.
    write(&sink, vec![payload(2, Duration::ZERO)]).await;
    wait_status(&sink, "two waiting", |s| s.waiting == 2).await;
    assert_eq!(intake.received().len(), 1);
    assert_eq!(
        intake.received()[0].headers["dd-api-key"].to_str().unwrap(),
        "badbadbad"
    );
    sink.configure(Some(settings(&intake.url(), KEY)));
    wait_status(&sink, "both delivered", |s| {
        s.delivered == 2 && s.waiting == 0
    })
    .await;
    assert_eq!(sink.status().dropped, 0);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn points_past_the_hour_are_dropped_and_counted_not_sent() {
    let intake = Intake::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&intake.url(), KEY)));
    let (old, recent) = (
        payload(1, Duration::from_secs(2 * 3600)),
        payload(2, Duration::from_secs(60)),
    );
    let recent_id = recent.request_id().to_string();
    write(&sink, vec![old, recent]).await;
    let s = wait_status(&sink, "one delivered, one dropped", |s| {
        s.delivered == 1 && s.dropped == 1
    })
    .await;
    assert_eq!(s.dropped_by_reason.get("too_old"), Some(&1));
    assert_eq!(s.window_seconds, 3600 - 60);
    let ids = accepted_ids(&intake);
    assert_eq!(ids.keys().collect::<Vec<_>>(), [&recent_id]);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_listed_in_a_202_are_counted_and_the_payloads_delivered() {
    let intake = Intake::start(KEY).await;
    intake.script([Answer {
        status: 202,
        headers: vec![],
        body: r#"{"errors":["metric algorithmia.x: point too far in the future"]}"#.into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&intake.url(), KEY)));
    write(&sink, vec![payload(1, Duration::ZERO)]).await;
    let s = wait_status(&sink, "delivered", |s| s.delivered == 1).await;
    assert_eq!(s.intake_errors, 1);
    assert!(
        s.last_intake_error
            .unwrap()
            .contains("too far in the future")
    );
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_was_not_accepted_is_sent_after_a_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    sink.configure(Some(settings(&format!("http://{port}"), KEY)));
    write(&sink, (0..20).map(|i| payload(i, Duration::ZERO)).collect()).await;
    wait_status(&sink, "waiting", |s| {
        s.waiting == 20 && s.state == "failing"
    })
    .await;
    sink.stop().await;
    let intake = Intake::start_on(port, KEY).await;
    let sink = DatadogDelivery::start(config(dir.path())).unwrap();
    assert_eq!(sink.status().waiting, 20);
    sink.configure(Some(settings(&intake.url(), KEY)));
    wait_status(&sink, "delivered", |s| s.delivered == 20 && s.waiting == 0).await;
    let ids = accepted_ids(&intake);
    assert_eq!(ids.len(), 20);
    sink.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_spool_bound_the_oldest_are_dropped_and_each_payload_counted_once() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.spool_max_bytes = 64 << 10;
    c.segment_bytes = 16 << 10;
    let sink = DatadogDelivery::start(c).unwrap();
    sink.configure(Some(settings(&format!("http://{port}"), KEY)));
    for b in 0..10 {
        write(
            &sink,
            (b * 50..b * 50 + 50)
                .map(|i| payload(i, Duration::ZERO))
                .collect(),
        )
        .await;
    }
    let s = wait_status(&sink, "some dropped for the bound", |s| {
        s.dropped_by_reason
            .get("spool_full")
            .is_some_and(|n| *n > 0)
    })
    .await;
    assert!(s.waiting < 500, "{s:?}");
    let intake = Intake::start_on(port, KEY).await;
    let s = wait_status(&sink, "nothing waiting", |s| {
        s.waiting == 0 && s.delivered + s.dropped == 500
    })
    .await;
    assert_eq!(s.dropped_by_reason.get("spool_full"), Some(&s.dropped));
    let ids = accepted_ids(&intake);
    assert_eq!(ids.len() as u64, s.delivered);
    assert!(ids.values().all(|n| *n == 1), "{ids:?}");
    sink.stop().await;
    intake.stop();
}
