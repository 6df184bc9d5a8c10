//! End-to-end tests of the runtime through the real HTTP API: real worker processes (the probe
//! algorithm, Python standard library), real SQLite in a temporary data directory.

mod common;

use std::time::Duration;

use std::collections::HashMap;

use common::{TestServer, eventually, report};
use reqwest::Method;
use serde_json::{Value, json};

fn is_uuid_with_prefix(s: &str, prefix: &str) -> bool {
    let Some(rest) = s.strip_prefix(prefix) else {
        return false;
    };
    let parts: Vec<_> = rest.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && rest.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

fn is_payload_time(s: &str) -> bool {
    // 2021-02-20T00:21:54.867231
    let b = s.as_bytes();
    b.len() == 26
        && s.chars().enumerate().all(|(i, c)| match i {
            4 | 7 => c == '-',
            10 => c == 'T',
            13 | 16 => c == ':',
            19 => c == '.',
            _ => c.is_ascii_digit(),
        })
}

#[tokio::test]
async fn a_payload_carries_the_seven_operational_keys_and_the_reported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let v = t.probe("acme", "scorer", 1, true).await;
    assert_eq!(v, "1.0.0");
    let key = t.new_key().await;
    let input = json!({
        "print": "hello from the algorithm",
        "reports": [
            report(&[("risk_score", json!(0.2)), ("approved", json!(true))]),
            // Java client: numeric strings. A later value for a key wins.
            report(&[("risk_score", json!("0.35")), ("n_features", json!("12"))]),
        ],
    });
    let resp = t
        .http
        .post(format!(
            "{}/v1/algo/acme/scorer/1.0.0?stdout=True&timeout=30",
            t.url
        ))
        .header("Authorization", format!("Simple {key}"))
        .json(&input)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["result"]["reports"],
        json!([[200, {"accepted": 2}], [200, {"accepted": 2}]])
    );
    assert_eq!(body["metadata"]["content_type"], "json");
    assert!(body["metadata"]["duration"].as_f64().unwrap() > 0.0);
    assert_eq!(body["metadata"]["stdout"], "hello from the algorithm\n");

    let payloads = t.wait_payloads("algorithm=acme/scorer", 1).await;
    let p = payloads[0].as_object().unwrap();
    let keys: Vec<&str> = p.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "risk_score",
            "approved",
            "n_features",
            "duration_milliseconds",
            "algorithm_version",
            "request_id",
            "time",
            "algorithm_name",
            "session_id",
            "algorithm_owner"
        ]
    );
    assert_eq!(p["risk_score"], json!(0.35));
    assert_eq!(p["approved"], json!(1));
    assert_eq!(p["n_features"], json!(12));
    assert_eq!(p["algorithm_name"], "scorer");
    assert_eq!(p["algorithm_owner"], "acme");
    assert_eq!(p["algorithm_version"], "1.0.0");
    assert_eq!(p["request_id"], request_id.as_str());
    assert!(
        is_uuid_with_prefix(p["request_id"].as_str().unwrap(), "req-"),
        "{p:?}"
    );
    assert!(
        is_uuid_with_prefix(p["session_id"].as_str().unwrap(), "rses-"),
        "{p:?}"
    );
    assert!(p["duration_milliseconds"].is_u64(), "{p:?}");
    assert!(is_payload_time(p["time"].as_str().unwrap()), "{p:?}");

    // The same worker serves the next call: same session, new request.
    let (_, rid2, _) = t.call(&key, "acme/scorer", json!({})).await;
    let payloads = t.wait_payloads("algorithm=acme/scorer", 2).await;
    assert_eq!(payloads[0]["request_id"], rid2.unwrap().as_str());
    assert_eq!(payloads[0]["session_id"], payloads[1]["session_id"]);
    // Metrics are per execution: nothing reported, no metric keys.
    assert_eq!(payloads[0].as_object().unwrap().len(), 7);
    t.stop().await;
}

#[tokio::test]
async fn bad_reports_get_400_naming_key_and_limit_and_the_valid_part_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "bad", 1, true).await;
    let key = t.new_key().await;
    let many: Vec<(String, Value)> = (0..26).map(|i| (format!("m{i:02}"), json!(i))).collect();
    let many_ref: Vec<(&str, Value)> = many.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let big = "k".repeat(25_000);
    let input = json!({"reports": [
        report(&[("good", json!(1)), ("label", json!("high"))]),
        report(&[("time", json!(5))]),
        report(&[("timestamp", json!(5))]),
        {"not": "a list"},
        report(&[(big.as_str(), json!(1))]),
        report(&many_ref),
    ], "print": "done"});
    let resp = t
        .http
        .post(format!("{}/v1/algo/acme/bad?stdout=true", t.url))
        .header("Authorization", key.as_str())
        .json(&input)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    let reports = body["result"]["reports"].as_array().unwrap();
    let status = |i: usize| reports[i][0].as_u64().unwrap();
    let message = |i: usize| {
        reports[i][1]["error"]["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status(0), 400);
    assert!(
        message(0).contains("`label`") && message(0).contains("not numeric"),
        "{}",
        message(0)
    );
    assert_eq!(reports[0][1]["error"]["field"], "label");
    assert_eq!(status(1), 400);
    assert!(
        message(1).contains("`time`") && message(1).contains("reserved"),
        "{}",
        message(1)
    );
    assert_eq!(status(2), 400);
    assert!(message(2).contains("`timestamp`"), "{}", message(2));
    assert_eq!(status(3), 400);
    assert!(message(3).contains("JSON array"), "{}", message(3));
    assert_eq!(status(4), 400);
    assert!(message(4).contains("25000 bytes"), "{}", message(4));
    // 1 metric ("good") already held: 24 more fit, the 25th and 26th of this report do not.
    assert_eq!(status(5), 400);
    assert!(
        message(5).contains("`m24`") && message(5).contains("at most 25 metrics"),
        "{}",
        message(5)
    );
    // The rejections are in the execution's log, where the algorithm's author looks.
    let stdout = body["metadata"]["stdout"].as_str().unwrap();
    assert!(
        stdout.contains("[insights] rejected: insight `label`"),
        "{stdout}"
    );
    assert!(
        stdout.starts_with("done\n"),
        "printed before reporting: {stdout}"
    );

    let p = &t.wait_payloads("algorithm=acme/bad", 1).await[0];
    let obj = p.as_object().unwrap();
    assert_eq!(obj["good"], 1);
    assert_eq!(obj.len(), 7 + 25, "{p}");
    assert!(!obj.contains_key("label") && !obj.contains_key("m24") && !obj.contains_key("m25"));
    assert!(
        t.metric("insights_reports_rejected_total{reason=\"non_numeric\"}")
            .await
            >= 1.0
    );
    assert!(
        t.metric("insights_reports_rejected_total{reason=\"too_many_metrics\"}")
            .await
            >= 2.0
    );
    // Still serving.
    let (s, _, _) = t.call(&key, "acme/bad", json!({})).await;
    assert_eq!(s, 200);
    t.stop().await;
}

#[tokio::test]
async fn reports_after_the_execution_finished_are_refused_with_409() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "late", 1, true).await;
    let key = t.new_key().await;
    let (go, done) = (dir.path().join("late-go"), dir.path().join("late-done"));
    let (s, _, _) = t
        .call(
            &key,
            "acme/late",
            json!({"late_report": report(&[("after", json!(1))]), "late_go": go, "late_done": done}),
        )
        .await;
    assert_eq!(s, 200);
    // The call has answered: only now may its late report go, and no other call starts until
    // it was answered (a call in flight would accept it).
    std::fs::write(&go, "").unwrap();
    eventually("the late report never arrived", async || done.exists()).await;
    // Ask the worker what its late report was told. (Not through the rejection metric: the
    // recorder is shared with the other tests of this process.)
    let (_, _, body) = t
        .call(&key, "acme/late", json!({"late_status": true}))
        .await;
    assert_eq!(body["result"]["late_status"][0], 409, "{body}");
    assert!(
        body["result"]["late_status"][1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already finished")
    );
    let payloads = t.wait_payloads("algorithm=acme/late", 2).await;
    assert!(
        payloads.iter().all(|p| p.get("after").is_none()),
        "{payloads:?}"
    );
    assert!(
        t.metric("insights_reports_rejected_total{reason=\"execution_finished\"}")
            .await
            >= 1.0
    );

    // A token that was never issued is refused too.
    let resp = t
        .http
        .post(format!("{}/worker/not-a-token/v1/insights", t.url))
        .json(&report(&[("x", json!(1))]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    t.stop().await;
}

#[tokio::test]
async fn keys_and_the_admin_token_guard_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "guarded", 1, false).await;
    let call = |auth: Option<String>| {
        let mut req = t
            .http
            .post(format!("{}/v1/algo/acme/guarded", t.url))
            .json(&json!({}));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, body) = call(None).await;
    assert_eq!(s, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key is required")
    );
    let (s, body) = call(Some("Simple simWRONG".into())).await;
    assert_eq!(s, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid")
    );

    let (_, created) = t
        .admin(
            Method::POST,
            "/v1/admin/api-keys",
            Some(json!({"name": "ci"})),
        )
        .await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("sim"));
    assert_eq!(call(Some(format!("Simple {key}"))).await.0, 200);
    assert_eq!(
        call(Some(key.clone())).await.0,
        200,
        "the Python client's bare key"
    );

    // The key list never shows keys.
    let (_, list) = t.admin(Method::GET, "/v1/admin/api-keys", None).await;
    assert!(!list.to_string().contains(&key));
    assert_eq!(list["results"][0]["name"], "ci");

    // Admin endpoints refuse API keys and missing tokens.
    let admin_endpoints = [
        (Method::POST, "/v1/algorithms/acme"),
        (Method::POST, "/v1/algorithms/acme/guarded/versions"),
        (Method::PATCH, "/v1/algorithms/acme/guarded/versions/1.0.0"),
        (Method::GET, "/v1/admin/api-keys"),
        (Method::POST, "/v1/admin/api-keys"),
        (Method::GET, "/v1/admin/insights/payloads"),
        (Method::GET, "/v1/admin/algorithms"),
    ];
    let send = |method: &Method, path: &str, auth: Option<String>| {
        let mut req = t
            .http
            .request(method.clone(), format!("{}{path}", t.url))
            .json(&json!({}));
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        req.send()
    };
    for (method, path) in &admin_endpoints {
        for auth in [None, Some(format!("Simple {key}"))] {
            let r = send(method, path, auth.clone()).await.unwrap();
            assert_eq!(r.status(), 401, "{method} {path} with {auth:?}");
        }
    }

    let (s, _) = t
        .admin(Method::DELETE, &format!("/v1/admin/api-keys/{id}"), None)
        .await;
    assert_eq!(s, 204);
    assert_eq!(call(Some(format!("Simple {key}"))).await.0, 401, "revoked");
    let (s, _) = t
        .admin(Method::DELETE, &format!("/v1/admin/api-keys/{id}"), None)
        .await;
    assert_eq!(s, 404);

    // Wrong admin tokens are refused everywhere; past five from one address they get 429 with
    // Retry-After (the limit is against noise and log flooding)...
    let mut statuses = Vec::new();
    let mut retry_after = Vec::new();
    for (method, path) in &admin_endpoints {
        let r = send(method, path, Some("Bearer nope".into()))
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
        retry_after.push(r.headers().get("retry-after").is_some());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429]);
    assert_eq!(retry_after, [false, false, false, false, false, true, true]);
    let r = send(
        &Method::GET,
        "/v1/admin/algorithms",
        Some("Bearer nope".into()),
    )
    .await
    .unwrap();
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["error_type"], "RateLimitError");
    // ...but never lock the administrator out: anyone sharing the address (a NAT, a proxy,
    // the same host) could otherwise keep them out with five requests a minute.
    let (s, body) = t.admin(Method::GET, "/v1/admin/algorithms", None).await;
    assert_eq!(s, 200, "the right token after wrong ones: {body}");
    t.stop().await;
}

#[tokio::test]
async fn bad_inputs_get_clear_errors_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "strict", 1, true).await;
    let key = t.new_key().await;
    let post = |path: &str, ct: &str, body: &'static str| {
        let req = t
            .http
            .post(format!("{}{path}", t.url))
            .header("Authorization", format!("Simple {key}"))
            .header("Content-Type", ct)
            .body(body);
        async move {
            let r = req.send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let cases: Vec<(&str, &str, &str, u16, &str)> = vec![
        (
            "/v1/algo/acme/nothere",
            "application/json",
            "{}",
            404,
            "acme/nothere does not exist",
        ),
        (
            "/v1/algo/acme/strict/9.9.9",
            "application/json",
            "{}",
            404,
            "acme/strict/9.9.9 does not exist",
        ),
        (
            "/v1/algo/acme/strict/one",
            "application/json",
            "{}",
            400,
            "version: \"one\" is not a semantic version",
        ),
        (
            "/v1/algo/acme/strict?timeout=soon",
            "application/json",
            "{}",
            400,
            "timeout: must be a whole number",
        ),
        (
            "/v1/algo/acme/strict?timeout=0",
            "application/json",
            "{}",
            400,
            "timeout: must be between 1 and 3000",
        ),
        (
            "/v1/algo/acme/strict?timeout=99999",
            "application/json",
            "{}",
            400,
            "timeout: must be between 1 and 3000",
        ),
        (
            "/v1/algo/acme/strict?stdout=maybe",
            "application/json",
            "{}",
            400,
            "stdout: must be true or false",
        ),
        (
            "/v1/algo/acme/strict?output=xml",
            "application/json",
            "{}",
            400,
            "output: must be raw or void",
        ),
        (
            "/v1/algo/acme/strict",
            "application/json",
            "{not json",
            400,
            "body: is not valid JSON",
        ),
        (
            "/v1/algo/acme/strict",
            "application/x-www-form-urlencoded",
            "a=1",
            415,
            "use application/json, text/plain or application/octet-stream",
        ),
    ];
    for (path, ct, body, status, needle) in cases {
        let (s, b) = post(path, ct, body).await;
        assert_eq!(s, status, "{path}: {b}");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }

    let admin_cases: Vec<(Method, &str, Value, u16, &str)> = vec![
        (
            Method::POST,
            "/v1/algorithms/acme",
            json!({"name": "has space", "source": {"path": "/", "command": ["x"]}}),
            400,
            "name: must be 1 to 64",
        ),
        (
            Method::POST,
            "/v1/algorithms/ac%20me",
            json!({"name": "ok", "source": {"path": "/", "command": ["x"]}}),
            400,
            "owner: must be",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme",
            json!({"name": "ok", "source": {"path": "/no/such/dir", "command": ["x"]}}),
            400,
            "source.path: /no/such/dir cannot be used",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme",
            json!({"name": "ok", "source": {"path": "/", "command": []}}),
            400,
            "source.command: must name a program",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme",
            json!({"name": "ok", "source": {"path": "/", "command": ["x"]}, "settings": {"pool_size": 1000}}),
            400,
            "settings.pool_size: must be between 1 and 64",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme",
            json!({"name": "ok", "source": {"path": "/", "command": ["x"]}, "settings": {"poolsize": 2}}),
            400,
            "settings.poolsize: unknown field `poolsize`",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme",
            json!({"name": "strict", "source": {"path": common::probe_dir(), "command": ["x"]}}),
            409,
            "acme/strict already exists",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme/strict/versions",
            json!({"version_info": {"version_type": "huge"}}),
            400,
            "version_info.version_type: unknown variant `huge`",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme/strict/versions",
            json!({"settings": {"insight_enabled": true}}),
            400,
            "settings.insight_enabled: unknown field `insight_enabled`",
        ),
        (
            Method::POST,
            "/v1/algorithms/acme/none/versions",
            json!({}),
            404,
            "acme/none does not exist",
        ),
        (
            Method::PATCH,
            "/v1/algorithms/acme/strict/versions/7.0.0",
            json!({"settings": {"insights_enabled": false}}),
            404,
            "acme/strict/7.0.0 does not exist",
        ),
        (
            Method::PATCH,
            "/v1/algorithms/acme/strict/versions/1.0.0",
            json!({"settings": {"insights_enabled": "yes"}}),
            400,
            "settings.insights_enabled: invalid type",
        ),
        (
            Method::GET,
            "/v1/admin/insights/payloads?limit=0",
            Value::Null,
            400,
            "limit: must be a number from 1 to 1000",
        ),
        (
            Method::GET,
            "/v1/admin/insights/payloads?limit=5000",
            Value::Null,
            400,
            "limit: must be a number from 1 to 1000",
        ),
        (
            Method::GET,
            "/v1/admin/insights/payloads?algorithm=nope",
            Value::Null,
            400,
            "algorithm: must be owner/name",
        ),
        (
            Method::POST,
            "/v1/admin/api-keys",
            json!({"name": ""}),
            400,
            "name: must be 1 to 100 characters",
        ),
    ];
    for (method, path, body, status, needle) in admin_cases {
        let body = (!body.is_null()).then_some(body);
        let (s, b) = t.admin(method.clone(), path, body).await;
        assert_eq!(s, status, "{method} {path}: {b}");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {path}: {msg}");
    }
    // Nothing above changed what was there, and the server still serves.
    let (_, algos) = t.admin(Method::GET, "/v1/admin/algorithms", None).await;
    assert_eq!(algos["results"].as_array().unwrap().len(), 1);
    let (s, _, _) = t.call(&key, "acme/strict", json!({})).await;
    assert_eq!(s, 200);
    t.stop().await;
}

#[tokio::test]
async fn switching_insights_off_stops_payloads_from_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "toggle", 1, true).await;
    let key = t.new_key().await;
    let (_, first, _) = t.call(&key, "acme/toggle", json!({})).await;
    let (s, v) = t
        .admin(
            Method::PATCH,
            "/v1/algorithms/acme/toggle/versions/1.0.0",
            Some(json!({"settings": {"insights_enabled": false}})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["settings"]["insights_enabled"], false);
    t.call(&key, "acme/toggle", json!({})).await;
    t.admin(
        Method::PATCH,
        "/v1/algorithms/acme/toggle/versions/1.0.0",
        Some(json!({"settings": {"insights_enabled": true}})),
    )
    .await;
    let (_, third, _) = t.call(&key, "acme/toggle", json!({})).await;
    let payloads = t.wait_payloads("algorithm=acme/toggle", 2).await;
    let ids: Vec<_> = payloads
        .iter()
        .map(|p| p["request_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, [third.unwrap(), first.unwrap()]);
    let (_, versions) = t
        .admin(Method::GET, "/v1/algorithms/acme/toggle/versions", None)
        .await;
    assert_eq!(versions["results"][0]["settings"]["insights_enabled"], true);
    t.stop().await;
}

#[tokio::test]
async fn failed_executions_produce_payloads_and_status_keys_are_opt_in() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "fails", 1, true).await;
    let key = t.new_key().await;
    let (s, _, body) = t
        .call(
            &key,
            "acme/fails",
            json!({"reports": [report(&[("seen", json!(1))])], "error": "bad applicant"}),
        )
        .await;
    // The algorithm ran and failed: Algorithmia's 200 with an error object.
    assert_eq!(s, 200);
    assert_eq!(body["error"]["message"], "bad applicant");
    assert_eq!(body["error"]["error_type"], "AlgorithmError");
    assert_eq!(body["error"]["stacktrace"], "Traceback: probe");
    let p = &t.wait_payloads("algorithm=acme/fails", 1).await[0];
    assert_eq!(p["seen"], 1);
    assert!(
        p.get("status").is_none() && p.get("error_type").is_none(),
        "{p}"
    );

    let v2 = t
        .publish(
            "acme",
            "fails",
            json!({"insights_enabled": true, "insights_include_status": true}),
        )
        .await;
    t.call(&key, &format!("acme/fails/{v2}"), json!({"error": "again"}))
        .await;
    t.call(&key, &format!("acme/fails/{v2}"), json!({})).await;
    let p = t
        .wait_payloads(&format!("algorithm=acme/fails&version={v2}"), 2)
        .await;
    assert_eq!(
        (&p[0]["status"], p[0].get("error_type")),
        (&json!("success"), None)
    );
    assert_eq!(
        (&p[1]["status"], &p[1]["error_type"]),
        (&json!("error"), &json!("AlgorithmError"))
    );
    t.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_call_leaves_no_worker_half_way_and_its_payload_comes() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    // One worker: the next call can only be answered once the abandoned one has finished.
    t.probe("acme", "abandoned", 1, true).await;
    let key = t.new_key().await;
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    let call = {
        let (http, url, key) = (t.http.clone(), t.url.clone(), key.clone());
        let input = json!({
            "started": started, "wait_for": go, "echo": "abandoned",
            "reports": [report(&[("risk_score", json!(0.25))])],
        });
        tokio::spawn(async move {
            http.post(format!("{url}/v1/algo/acme/abandoned"))
                .header("Authorization", format!("Simple {key}"))
                .json(&input)
                .send()
                .await
        })
    };
    // The execution is in the worker; then the client goes away (its connection closes).
    eventually("the execution never started", async || started.exists()).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    eventually("the server never saw the client go", async || {
        t.metric("insights_calls_detached_total").await >= 1.0
    })
    .await;
    // Only now does the algorithm answer: to no one. Its execution still ends whole.
    std::fs::write(&go, "go").unwrap();
    let p = &t.wait_payloads("algorithm=acme/abandoned", 1).await[0];
    assert_eq!(p["risk_score"], 0.25);
    // The worker is free and in step: the next call gets its own answer, not the abandoned one.
    let (s, _, body) = t
        .call(&key, "acme/abandoned", json!({"echo": "next"}))
        .await;
    assert_eq!(
        (s, &body["result"]["echo"]),
        (200, &json!("next")),
        "{body}"
    );
    assert_eq!(
        t.wait_payloads("algorithm=acme/abandoned", 2).await.len(),
        2
    );
    assert_eq!(t.metric("insights_calls_detached_total").await, 1.0);
    t.stop().await;
}

#[tokio::test]
async fn concurrent_calls_across_workers_each_carry_their_own_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "busy", 4, true).await;
    let key = t.new_key().await;
    const CALLS: usize = 48;
    let calls = (0..CALLS).map(|i| {
        let (t, key) = (&t, &key);
        async move {
            let input = json!({
                "echo": i,
                "sleep": 0.02,
                "reports": [report(&[("call", json!(i))]), report(&[("call_squared", json!(i * i))])],
            });
            let (s, rid, body) = t.call(key, "acme/busy", input).await;
            assert_eq!(s, 200, "{body}");
            assert_eq!(body["result"]["echo"], i);
            (rid.unwrap(), i, body["result"]["pid"].as_u64().unwrap())
        }
    });
    let results = futures_join_all(calls).await;
    let pids: std::collections::HashSet<u64> = results.iter().map(|r| r.2).collect();
    assert!(
        pids.len() > 1 && pids.len() <= 4,
        "calls ran on {} workers",
        pids.len()
    );

    let payloads = t
        .wait_payloads("algorithm=acme/busy&limit=1000", CALLS)
        .await;
    assert_eq!(payloads.len(), CALLS);
    let by_request: HashMap<String, &Value> = payloads
        .iter()
        .map(|p| (p["request_id"].as_str().unwrap().to_string(), p))
        .collect();
    for (rid, i, _) in &results {
        let p = by_request[rid];
        assert_eq!(p["call"], *i, "{p}");
        assert_eq!(p["call_squared"], i * i, "{p}");
    }
    assert_eq!(
        t.metric("insights_pool_busy_workers{algorithm=\"acme/busy\"")
            .await,
        0.0
    );
    t.stop().await;
}

async fn futures_join_all<F: std::future::Future>(
    futs: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futs.into_iter().collect();
    let mut out = Vec::with_capacity(handles.len());
    // Poll all concurrently on this task.
    let mut pinned: Vec<_> = handles.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if done[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => done[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(done.into_iter().map(Option::unwrap));
    out
}

#[tokio::test]
async fn crashing_hanging_and_garbage_workers_are_replaced_and_the_pool_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "flaky", 1, true).await;
    let key = t.new_key().await;
    let (_, _, first) = t.call(&key, "acme/flaky", json!({})).await;
    let pid0 = first["result"]["pid"].as_u64().unwrap();
    // Another caller's execution prints something of theirs on the same worker.
    let (_, _, printed) = t
        .call(
            &key,
            "acme/flaky",
            json!({"print": "card 4111-1111-1111-1111"}),
        )
        .await;
    assert_eq!(printed["result"]["pid"].as_u64().unwrap(), pid0);

    let (s, _, body) = t.call(&key, "acme/flaky", json!({"crash": true})).await;
    assert_eq!(s, 200);
    assert_eq!(body["error"]["error_type"], "SystemError", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("crashed") && msg.contains("exit status: 3") && msg.contains("about to crash"),
        "{msg}"
    );
    assert!(
        !msg.contains("4111"),
        "the crash message quotes an earlier execution's output: {msg}"
    );
    let (_, _, after_crash) = t.call(&key, "acme/flaky", json!({})).await;
    let pid1 = after_crash["result"]["pid"].as_u64().unwrap();
    assert_ne!(pid0, pid1);

    let resp = t
        .http
        .post(format!("{}/v1/algo/acme/flaky?timeout=1", t.url))
        .header("Authorization", key.as_str())
        .json(&json!({"hang": true}))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["error_type"], "TimeoutError", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("within the timeout of 1 s")
    );
    let (_, _, after_hang) = t.call(&key, "acme/flaky", json!({})).await;
    let pid2 = after_hang["result"]["pid"].as_u64().unwrap();
    assert_ne!(pid1, pid2);
    // The hung process was killed, not left behind.
    assert!(
        !std::path::Path::new(&format!("/proc/{pid1}")).exists(),
        "pid {pid1} still runs"
    );

    let (_, _, body) = t.call(&key, "acme/flaky", json!({"garbage": true})).await;
    assert_eq!(body["error"]["error_type"], "SystemError");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("broke the ADK protocol") && msg.contains("this is not an answer"),
        "{msg}"
    );
    let (s, _, body) = t.call(&key, "acme/flaky", json!({"echo": "fine"})).await;
    assert_eq!((s, &body["result"]["echo"]), (200, &json!("fine")));

    // Every execution, failed or not, produced its payload.
    t.wait_payloads("algorithm=acme/flaky", 7).await;
    assert_eq!(
        t.metric("insights_worker_crashes_total{algorithm=\"acme/flaky\"")
            .await,
        3.0
    );
    assert_eq!(
        t.metric("insights_worker_restarts_total{algorithm=\"acme/flaky\"")
            .await,
        3.0
    );
    t.stop().await;
}

#[tokio::test]
async fn a_worker_idle_past_the_timeout_is_stopped_and_the_next_call_starts_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_with(dir.path(), |c| {
        c.worker_idle_timeout = Some(Duration::from_millis(500));
    })
    .await;
    t.probe("acme", "sleepy", 1, true).await;
    let key = t.new_key().await;
    let (_, _, first) = t.call(&key, "acme/sleepy", json!({})).await;
    let pid = first["result"]["pid"].as_u64().unwrap();

    // The idle worker's process goes away by itself.
    let proc_dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while proc_dir.exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker {pid} is still running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        t.metric("insights_workers_stopped_idle_total{algorithm=\"acme/sleepy\"")
            .await,
        1.0
    );

    // The next call is served by a new worker, with its payload.
    let (status, _, second) = t.call(&key, "acme/sleepy", json!({})).await;
    assert_eq!(status, 200, "{second}");
    assert_ne!(second["result"]["pid"].as_u64().unwrap(), pid);
    t.wait_payloads("algorithm=acme/sleepy", 2).await;
    t.stop().await;
}

#[tokio::test]
async fn requests_without_a_key_or_worker_token_are_refused_before_their_body_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    for (path, status) in [
        ("/v1/algo/acme/anything", "401"),
        ("/worker/not-a-worker/v1/insights", "403"),
    ] {
        // Announce 16 MB and send none of it: the answer must come anyway.
        let mut s = tokio::net::TcpStream::connect(t.server.addr).await.unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut answer))
            .await
            .expect("answered without waiting for the body")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&answer),
            format!("HTTP/1.1 {status}"),
            "{path}"
        );
    }
    t.stop().await;
}

#[tokio::test]
async fn an_algorithm_that_never_stops_printing_still_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "chatty", 1, false).await;
    let key = t.new_key().await;
    let call = t
        .http
        .post(format!("{}/v1/algo/acme/chatty?timeout=1", t.url))
        .header("Authorization", key.as_str())
        .json(&json!({"spam": true}))
        .send();
    // The guard only catches a hang: the call itself ends after its 1 s timeout.
    let body: Value = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("the timeout fired although the log never went quiet")
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["error"]["error_type"], "TimeoutError", "{body}");
    let (status, _, after) = t.call(&key, "acme/chatty", json!({})).await;
    assert_eq!(status, 200, "{after}");
    t.stop().await;
}

#[tokio::test]
async fn calls_beyond_the_waiting_limit_are_refused_at_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_with(dir.path(), |c| c.max_waiting_calls = 1).await;
    t.probe("acme", "queued", 1, false).await;
    let key = t.new_key().await;
    let wait_for = |metric: &'static str| {
        let t = &t;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while t.metric(metric).await < 1.0 {
                assert!(tokio::time::Instant::now() < deadline, "{metric} stayed 0");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // The pool's one worker runs the first call; the second waits; the third finds the queue
    // (of one) full and is refused at once.
    let first = t.call(&key, "acme/queued", json!({"sleep": 2}));
    let second = async {
        wait_for("insights_pool_busy_workers{algorithm=\"acme/queued\"").await;
        t.call(&key, "acme/queued", json!({})).await
    };
    let third = async {
        wait_for("insights_calls_waiting{algorithm=\"acme/queued\"").await;
        t.call(&key, "acme/queued", json!({})).await
    };
    let ((s1, _, _), (s2, _, _), (s3, _, refused)) = tokio::join!(first, second, third);
    assert_eq!((s1, s2, s3), (200, 200, 503), "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_waiting_calls"),
        "{refused}"
    );
    assert_eq!(
        t.metric("insights_calls_refused_total{algorithm=\"acme/queued\"")
            .await,
        1.0
    );
    t.stop().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let config = insights::serve::ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().to_path_buf(),
        "another-token".into(),
    );
    let err = insights::serve::start(config)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("another insights process"), "{err}");
    t.stop().await;
    // Once the first has stopped, the directory is free again.
    let again = TestServer::start(dir.path()).await;
    again.stop().await;
}

#[tokio::test]
async fn void_calls_beyond_their_limit_are_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_with(dir.path(), |c| c.max_void_calls = 1).await;
    t.probe("acme", "slow", 1, false).await;
    let key = t.new_key().await;
    let void = |input: Value| {
        t.http
            .post(format!("{}/v1/algo/acme/slow?output=void", t.url))
            .header("Authorization", key.as_str())
            .json(&input)
            .send()
    };
    assert_eq!(void(json!({"sleep": 2})).await.unwrap().status(), 200);
    let refused = void(json!({})).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        refused.headers()["retry-after"],
        "1",
        "every 503 says when to retry"
    );
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_void_calls"),
        "{body}"
    );
    assert_eq!(t.metric("insights_void_calls_refused_total").await, 1.0);
    t.stop().await;
}

/// Calls `acme/{name}` with `stdout=true`; returns what the execution printed.
async fn printed(t: &TestServer, key: &str, name: &str, input: Value) -> String {
    let resp = t
        .http
        .post(format!("{}/v1/algo/acme/{name}?stdout=true", t.url))
        .header("Authorization", key)
        .json(&input)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("error").is_none(), "{body}");
    body["metadata"]["stdout"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn odd_output_neither_stops_the_log_nor_moves_into_the_next_call() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "noisy", 1, false).await;
    let key = t.new_key().await;

    // Bytes that are not UTF-8: kept (replaced), and the log goes on.
    let got = printed(&t, &key, "noisy", json!({"raw_stdout": b64(b"caf\xe9\n")})).await;
    assert_eq!(got, "caf\u{fffd}\n");
    // A line far over the 64 KiB line limit: cut, and the log goes on.
    let long = "y".repeat(200_000);
    let got = printed(&t, &key, "noisy", json!({"print": long})).await;
    assert!(
        got.contains("[insights: the line was cut at 65536 bytes]"),
        "{}",
        got.len()
    );
    assert!(got.len() < 70_000, "{}", got.len());
    // A line without a newline belongs to the call that printed it.
    let got = printed(
        &t,
        &key,
        "noisy",
        json!({"raw_stdout": b64(b"progress 42%")}),
    )
    .await;
    assert_eq!(got, "progress 42%\n");
    let got = printed(&t, &key, "noisy", json!({"print": "next call"})).await;
    assert_eq!(got, "next call\n");
    t.stop().await;
}

#[tokio::test]
async fn text_and_binary_inputs_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "io", 1, false).await;
    let key = t.new_key().await;
    let resp = t
        .http
        .post(format!("{}/v1/algo/acme/io", t.url))
        .header("Authorization", key.as_str())
        .header("Content-Type", "text/plain")
        .body("héllo")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["result"], "héllo");
    assert_eq!(body["metadata"]["content_type"], "text");

    let bytes: Vec<u8> = (0u8..=255).collect();
    let resp = t
        .http
        .post(format!("{}/v1/algo/acme/io", t.url))
        .header("Authorization", key.as_str())
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["metadata"]["content_type"], "binary");
    use base64::Engine as _;
    let got = base64::engine::general_purpose::STANDARD
        .decode(body["result"].as_str().unwrap())
        .unwrap();
    let mut reversed = bytes.clone();
    reversed.reverse();
    assert_eq!(got, reversed);

    // output=raw returns the bare result.
    let raw = t
        .http
        .post(format!("{}/v1/algo/acme/io?output=raw", t.url))
        .header("Authorization", key.as_str())
        .header("Content-Type", "application/octet-stream")
        .body(bytes.clone())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.to_vec(), reversed);
    t.stop().await;
}

#[tokio::test]
async fn a_published_version_is_a_snapshot_of_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src-copy");
    std::fs::create_dir_all(src.join("src")).unwrap();
    let probe = std::fs::read_to_string(common::probe_dir().join("src/Algorithm.py")).unwrap();
    std::fs::write(src.join("src/Algorithm.py"), &probe).unwrap();
    let t = TestServer::start(&dir.path().join("data")).await;
    t.probe_from("acme", "snap", &src, 1, false).await;
    // Break the source after publishing: 1.0.0 must not notice.
    std::fs::write(src.join("src/Algorithm.py"), "import sys; sys.exit(7)\n").unwrap();
    let key = t.new_key().await;
    let (s, _, body) = t.call(&key, "acme/snap/1.0.0", json!({"echo": 1})).await;
    assert_eq!((s, &body["result"]["echo"]), (200, &json!(1)), "{body}");
    // The next version snapshots the broken source, and says how it failed to load.
    let v2 = t.publish("acme", "snap", json!({})).await;
    let (_, _, body) = t.call(&key, &format!("acme/snap/{v2}"), json!({})).await;
    assert_eq!(body["error"]["error_type"], "LoadingError", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("exit status: 7"),
        "{body}"
    );
    t.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_algorithms_versions_keys_and_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "durable", 1, true).await;
    t.publish("acme", "durable", json!({"insights_enabled": false}))
        .await;
    let key = t.new_key().await;
    let (_, rid, _) = t
        .call(
            &key,
            "acme/durable/1.0.0",
            json!({"reports": [report(&[("kept", json!(42))])]}),
        )
        .await;
    t.wait_payloads("algorithm=acme/durable", 1).await;
    t.stop().await;

    let t = TestServer::start(dir.path()).await;
    let p = t.payloads("algorithm=acme/durable").await;
    assert_eq!(p.len(), 1);
    assert_eq!(
        (&p[0]["request_id"], &p[0]["kept"]),
        (&json!(rid.unwrap()), &json!(42))
    );
    let (_, versions) = t
        .admin(Method::GET, "/v1/algorithms/acme/durable/versions", None)
        .await;
    let got: Vec<(String, bool)> = versions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["version_info"]["semantic_version"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                v["settings"]["insights_enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [("1.1.0".to_string(), false), ("1.0.0".to_string(), true)]
    );
    // The old key still works; no version means the latest (1.1.0, Insights off).
    let (s, _, _) = t.call(&key, "acme/durable", json!({})).await;
    assert_eq!(s, 200);
    let (s, _, _) = t.call(&key, "acme/durable/1.0.0", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(t.wait_payloads("algorithm=acme/durable", 2).await.len(), 2);
    t.stop().await;
}

#[tokio::test]
async fn an_idle_worker_that_prints_is_read_between_calls_and_its_output_goes_to_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "murmur", 1, false).await;
    let key = t.new_key().await;
    let (go, done) = (dir.path().join("go"), dir.path().join("done"));
    // 2 MB printed between calls: thirty times what a pipe holds. Unread, the printing thread
    // would block for good on a full pipe. Then a line begun and not ended, as a progress bar
    // leaves it: the next caller's output must not start with it.
    let (lines, width, tail) = (2000, 1000, "progress 42%\r");
    let (s, _, first) = t
        .call(
            &key,
            "acme/murmur",
            json!({"idle_print": {"go": go, "lines": lines, "width": width, "tail": tail, "done": done}}),
        )
        .await;
    assert_eq!(s, 200, "{first}");
    std::fs::write(&go, "go").unwrap();
    eventually(
        "the idle worker's printing thread never finished",
        async || done.exists(),
    )
    .await;
    let printed_between = (lines * (width + 1)) as f64;
    eventually("the idle output was not all read", async || {
        t.metric("insights_worker_idle_output_bytes_total{algorithm=\"acme/murmur\"")
            .await
            == printed_between
    })
    .await;
    // None of it is the next caller's; the same worker serves it. The unended line is dropped
    // and counted as the call begins, before the request is written.
    let got = printed(&t, &key, "murmur", json!({"print": "mine"})).await;
    assert_eq!(got, "mine\n");
    assert_eq!(
        t.metric("insights_worker_idle_output_bytes_total{algorithm=\"acme/murmur\"")
            .await,
        printed_between + tail.len() as f64
    );
    let (_, _, after) = t.call(&key, "acme/murmur", json!({})).await;
    assert_eq!(after["result"]["pid"], first["result"]["pid"]);
    t.stop().await;
}

#[tokio::test]
async fn a_worker_that_exits_between_calls_is_noticed_and_the_next_call_gets_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "quitter", 1, true).await;
    let key = t.new_key().await;
    let go = dir.path().join("go");
    let (_, _, first) = t
        .call(
            &key,
            "acme/quitter",
            json!({"idle_exit": {"go": go, "status": 4}}),
        )
        .await;
    let pid = first["result"]["pid"].as_u64().unwrap();
    std::fs::write(&go, "go").unwrap();
    // Noticed with no call in flight: counted, and the process reaped (no zombie left).
    eventually("the exit between calls was not noticed", async || {
        t.metric("insights_worker_crashes_total{algorithm=\"acme/quitter\"")
            .await
            == 1.0
    })
    .await;
    let metrics = t.metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("insights_worker_crashes_total")
                && l.contains("acme/quitter")
                && l.contains("reason=\"crash\"")),
        "{metrics}"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "pid {pid} is still there"
    );
    // The next caller is not handed the dead worker: a new one serves it.
    let (s, _, second) = t.call(&key, "acme/quitter", json!({})).await;
    assert_eq!(s, 200, "{second}");
    assert_ne!(second["result"]["pid"].as_u64().unwrap(), pid);
    t.wait_payloads("algorithm=acme/quitter", 2).await;
    t.stop().await;
}
