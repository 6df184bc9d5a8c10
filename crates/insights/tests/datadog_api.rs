//! Datadog delivery end to end, through the admin API and real worker processes, to a local
//! stand-in of the intake (`datadog_stand_in`: no real Datadog is reachable from here): every
//! field of `PUT /v1/admin/insights/datadog` checked and named, the key never returned (API,
//! panel), the key test's verdicts, and a payload arriving as documented: path, `DD-API-KEY`,
//! `Content-Encoding: zstd1`, and the body field by field against the v2 series schema.

mod common;
mod datadog_stand_in;

use common::{TestServer, report};
use datadog_stand_in::Intake;
use reqwest::Method;
use serde_json::{Value, json};

const KEY: &str = "0123456789abcdef0123456789abcdef";

async fn panel_page(t: &TestServer, path: &str) -> String {
    // Sign in as a person does: the form's CSRF token in its cookie and hidden field.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = http
        .get(format!("{}/admin/sign-in", t.url))
        .send()
        .await
        .unwrap();
    let cookie = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string())
            .filter(|c| !c.ends_with('='))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let sign_in_cookie = cookie(&form);
    let html = form.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let r = http
        .post(format!("{}/admin/sign-in", t.url))
        .header("Cookie", sign_in_cookie)
        .form(&[
            ("token", common::ADMIN),
            ("csrf", csrf.as_str()),
            ("next", path),
        ])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    let session = cookie(&r);
    http.get(format!("{}{path}", t.url))
        .header("Cookie", session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn settings_are_validated_kept_secret_tested_and_payloads_arrive_as_documented() {
    let intake = Intake::start(KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;

    // Every faulty field named.
    let (s, body) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/datadog",
            Some(json!({"site": "datadog.com", "metric_prefix": "9", "tags": ["ok:1", "bad tag"], "url": "nope"})),
        )
        .await;
    assert_eq!(s, 400, "{body}");
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["site", "api_key", "metric_prefix", "tags[1]", "url"],
        "{body}"
    );
    let (s, body) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/datadog",
            Some(json!({"site": "datadoghq.com", "api_key": KEY, "colour": 1})),
        )
        .await;
    assert_eq!(s, 400, "{body}");

    // The key test: a refused key, then the right one.
    let test_body = |key: &str| json!({"site": "datadoghq.com", "api_key": key, "url": intake.url(), "tags": ["env:prod"]});
    let (s, verdict) = t
        .admin(
            Method::POST,
            "/v1/admin/insights/datadog/test",
            Some(test_body("wrongkey")),
        )
        .await;
    assert_eq!(s, 200, "{verdict}");
    assert_eq!(verdict["ok"], false);
    assert_eq!(verdict["outcome"], "key_refused");
    assert!(
        verdict["verdict"]
            .as_str()
            .unwrap()
            .contains("The API key was refused")
    );
    let (_, verdict) = t
        .admin(
            Method::POST,
            "/v1/admin/insights/datadog/test",
            Some(test_body(KEY)),
        )
        .await;
    assert_eq!(
        (verdict["ok"].clone(), verdict["outcome"].clone()),
        (json!(true), json!("valid")),
        "{verdict}"
    );

    // Saved; the key never comes back.
    let (s, saved) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/datadog",
            Some(test_body(KEY)),
        )
        .await;
    assert_eq!(s, 200, "{saved}");
    let (s, got) = t
        .admin(Method::GET, "/v1/admin/insights/datadog", None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["settings"]["api_key_set"], true);
    assert_eq!(got["settings"]["metric_prefix"], "algorithmia.");
    assert!(
        got["window_note"]
            .as_str()
            .unwrap()
            .contains("shorter of the delivery window and the hour")
    );
    let page = panel_page(&t, "/admin/insights").await;
    assert!(page.contains(r#"id="datadog-state""#), "{page}");
    assert!(
        page.contains("the effective window is the shorter of the delivery window and one hour")
    );
    assert!(page.contains("Edit Datadog"));
    for text in [saved.to_string(), got.to_string(), page] {
        assert!(!text.contains(KEY), "the key is in {text}");
    }
    // An edit without the key keeps it (same site and URL).
    let mut edit = test_body(KEY);
    edit.as_object_mut().unwrap().remove("api_key");
    let (s, body) = t
        .admin(Method::PUT, "/v1/admin/insights/datadog", Some(edit))
        .await;
    assert_eq!(s, 200, "{body}");

    // A payload, through a real worker.
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    let input = json!({"reports": [report(&[("risk score", 0.75.into()), ("count", 3.into())])]});
    let (status, rid, body) = t.call(&key, "acme/scorer", input).await;
    assert_eq!(status, 200, "{body}");
    let stored = t.wait_payloads("algorithm=acme/scorer", 1).await;
    let payload = &stored[0];
    let series = intake.wait_accepted_series(3, 20).await;
    let request = &intake.received()[0];
    assert_eq!(request.path, "/api/v2/series");
    assert_eq!(request.headers["dd-api-key"], KEY);
    assert_eq!(request.headers["content-encoding"], "zstd1");
    assert_eq!(request.headers["content-type"], "application/json");
    assert!(request.compressed_len < 512_000);
    let version = payload["algorithm_version"].as_str().unwrap();
    let time = insights_payload::parse_time(payload["time"].as_str().unwrap())
        .unwrap()
        .0;
    let tags = json!([
        "algorithm_name:scorer",
        "algorithm_owner:acme",
        format!("algorithm_version:{version}"),
        "env:prod",
    ]);
    let gauge = |metric: &str, value: Value| json!({"metric": metric, "type": 3, "points": [{"timestamp": time, "value": value}], "tags": tags});
    let duration = payload["duration_milliseconds"].as_f64().unwrap();
    assert_eq!(
        Value::Array(series),
        json!([
            gauge("algorithmia.risk_score", json!(0.75)),
            gauge("algorithmia.count", json!(3.0)),
            gauge("algorithmia.duration_milliseconds", json!(duration)),
        ])
    );
    assert!(
        !request.body.to_string().contains(&rid.unwrap()),
        "no request_id tag by default"
    );

    let (_, got) = t
        .admin(Method::GET, "/v1/admin/insights/datadog", None)
        .await;
    assert_eq!(got["status"]["delivered"], 1, "{got}");
    assert_eq!(got["summary"]["label"], "Delivering");
    assert!(t.metric("insights_datadog_delivered_total").await >= 1.0);

    let (s, _) = t
        .admin(Method::DELETE, "/v1/admin/insights/datadog", None)
        .await;
    assert_eq!(s, 204);
    let (_, got) = t
        .admin(Method::GET, "/v1/admin/insights/datadog", None)
        .await;
    assert_eq!(got["settings"], Value::Null);
    assert_eq!(got["summary"]["label"], "Not configured");
    t.stop().await;
    intake.stop();
}
