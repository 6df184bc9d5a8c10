//! The admin panel in a real browser: headless Chromium driven over WebDriver (`chromedriver`
//! and `chromium` from Debian, installed by `scripts/test`), against the real server, real
//! algorithm workers and real tansu brokers (plaintext, and SASL/SCRAM over TLS behind stunnel).
//! Each test saves screenshots under `target/screenshots/`.

mod common;

use std::time::Duration;

use common::browser::{Browser, PATIENCE};
use common::{ADMIN, TestServer};
use fantoccini::Locator;
use insights_testkit::scram::{OTHER_TOPIC, PASSWORD, TOPIC, USER, scram_broker};
use insights_testkit::tansu;
use reqwest::Method;
use serde_json::{Value, json};

async fn connection(t: &TestServer) -> Value {
    let (s, body) = t
        .admin(Method::GET, "/v1/admin/insights/connection", None)
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn every_page_needs_sign_in_a_wrong_token_is_refused_and_sign_out_works() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let b = Browser::open(&t.url, "sign-in").await;

    for page in [
        "/admin/insights",
        "/admin/algorithms",
        "/admin/api-keys",
        "/admin/algorithms/acme/scorer/versions/1.0.0",
    ] {
        b.goto(page).await;
        let at = b.at().await;
        assert!(at.starts_with("/admin/sign-in?next="), "{page} → {at}");
    }
    assert_eq!(
        b.unlabelled_controls().await,
        Vec::<Value>::new(),
        "sign-in"
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let api = http
        .get(format!("{}/v1/admin/insights/connection", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401, "the admin API without a session");
    let api = http
        .put(format!("{}/v1/admin/insights/connection", t.url))
        .json(&json!({"topic": "t", "brokers": "127.0.0.1:9", "connection_type": "plaintext"}))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401, "a change without a session");
    let forged = http
        .post(format!("{}/admin/sign-in", t.url))
        .form(&[("token", ADMIN), ("csrf", "0".repeat(64).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403, "a sign-in form from elsewhere");

    // A wrong token is refused, and says so.
    b.goto("/admin/api-keys").await;
    b.fill("#token", "not-the-token").await;
    b.click("form button[type=submit]").await;
    let error = b.wait_text("#token-error", |t| !t.is_empty()).await;
    assert_eq!(error, "That is not the admin token.");
    assert!(b.at().await.starts_with("/admin/sign-in"));
    b.screenshot("refused").await;

    // The right one leads to the page first asked for.
    b.fill("#token", ADMIN).await;
    b.click("form button[type=submit]").await;
    b.wait_at("/admin/api-keys").await;

    // The session cookie is out of reach of scripts (HttpOnly) and other sites (Strict).
    let cookies = b.c.execute("return document.cookie", vec![]).await.unwrap();
    assert!(
        !cookies.as_str().unwrap().contains("insights_session"),
        "{cookies}"
    );
    let session = b.c.get_named_cookie("insights_session").await.unwrap();
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(
        session.same_site().map(|s| s.to_string()).as_deref(),
        Some("Strict")
    );
    let session = format!("insights_session={}", session.value());
    // A signed-in request that changes something needs the page's CSRF token.
    let status = b
        .c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/v1/admin/api-keys', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{\"name\":\"forged\"}'})
               .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403));
    let status = b
        .c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             fetch('/v1/admin/api-keys', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': 'guess'}, body: '{\"name\":\"forged\"}'})
               .then(r => done(r.status));",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status, json!(403), "a wrong CSRF token");
    let (_, keys) = t.admin(Method::GET, "/v1/admin/api-keys", None).await;
    assert_eq!(keys["results"], json!([]), "nothing was created");

    // Every page's controls are labelled.
    for page in ["/admin/insights", "/admin/algorithms", "/admin/api-keys"] {
        b.goto(page).await;
        assert_eq!(b.unlabelled_controls().await, Vec::<Value>::new(), "{page}");
    }

    // Sign out: back to the sign-in page, and the pages are closed again.
    b.click("header .sign-out button").await;
    b.wait_text(".notice", |t| t == "You are signed out.").await;
    b.goto("/admin/insights").await;
    assert!(b.at().await.starts_with("/admin/sign-in"));
    b.close().await;
    // The session is gone on the server too: its cookie, replayed, opens nothing.
    let replayed = http
        .get(format!("{}/admin/insights", t.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303);
    let replayed = http
        .get(format!("{}/v1/admin/api-keys", t.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);

    // Failed attempts are rate-limited per address: the sixth wrong one in a minute gets 429,
    // and the right token still signs in (nobody sharing the address can lock it out).
    let mut statuses = Vec::new();
    for token in ["a", "b", "c", "d", "e", "f", ADMIN] {
        // A client cannot escape the limit by claiming to be someone else: no proxy is trusted.
        let spoofed = format!("203.0.113.{}", statuses.len());
        let headers = [("x-forwarded-for", spoofed.as_str())];
        statuses.push(sign_in_over_http(&http, &t.url, token, &headers).await.0);
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 303]);
    t.stop().await;
}

/// One sign-in through the form over plain HTTP (GET for the form's cookie and token, then
/// POST), with extra request headers; answers the status and the `Set-Cookie` headers.
async fn sign_in_over_http(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<String>) {
    let mut get = http.get(format!("{url}/admin/sign-in"));
    for (k, v) in headers {
        get = get.header(*k, *v);
    }
    let page = get.send().await.unwrap();
    let cookie = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let html = page.text().await.unwrap();
    let csrf = html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let mut post = http
        .post(format!("{url}/admin/sign-in"))
        .header("cookie", cookie)
        .form(&[("token", token), ("csrf", &csrf)]);
    for (k, v) in headers {
        post = post.header(*k, *v);
    }
    let r = post.send().await.unwrap();
    let cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (r.status().as_u16(), cookies)
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_failures_count_per_forwarded_client_and_cookies_are_secure() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_with(dir.path(), |c| {
        c.panel.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // The proxy (127.0.0.1, trusted) forwards two clients; the first fails five times.
    let first = [("x-forwarded-for", "198.51.100.1")];
    for _ in 0..5 {
        assert_eq!(
            sign_in_over_http(&http, &t.url, "wrong", &first).await.0,
            401
        );
    }
    assert_eq!(
        sign_in_over_http(&http, &t.url, "wrong", &first).await.0,
        429
    );
    assert_eq!(sign_in_over_http(&http, &t.url, ADMIN, &first).await.0, 303);
    let second = [
        ("x-forwarded-for", "198.51.100.2"),
        ("x-forwarded-proto", "https"),
    ];
    let (status, cookies) = sign_in_over_http(&http, &t.url, ADMIN, &second).await;
    assert_eq!(status, 303, "another client behind the same proxy");
    let session = cookies
        .iter()
        .find(|c| c.starts_with("insights_session="))
        .unwrap();
    assert!(session.contains("; HttpOnly") && session.contains("; SameSite=Strict"));
    assert!(session.ends_with("; Secure"), "TLS at the proxy: {session}");
    let (_, cookies) = sign_in_over_http(&http, &t.url, ADMIN, &[]).await;
    let plain = cookies
        .iter()
        .find(|c| c.starts_with("insights_session="))
        .unwrap();
    assert!(!plain.contains("Secure"), "plain HTTP: {plain}");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_through_the_modal_shows_connected_then_a_call_is_delivered() {
    let (_kafka, brokers) = tansu(TOPIC);
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    let b = Browser::open(&t.url, "connect").await;
    b.sign_in("/admin/insights").await;

    assert_eq!(b.text("#kafka-state-label").await, "Not connected");
    assert_eq!(b.text("#open-connection").await, "Connect to Kafka");
    b.click("#open-connection").await;
    assert!(b.displayed("#connection-dialog").await);
    assert!(
        !b.displayed("#sasl-fields").await,
        "plaintext is the default"
    );
    b.fill("#topic", TOPIC).await;
    b.fill("#brokers", &brokers).await;
    b.screenshot("form").await;
    b.click("#connect").await;

    // Tested, saved, reloaded; the state comes from the delivery thread.
    b.wait_text("#kafka-state-label", |t| t == "Connected")
        .await;
    assert_eq!(b.text("#open-connection").await, "Edit Connection");
    assert_eq!(connection(&t).await["connection"]["topic"], TOPIC);

    let (status, _, body) = t.call(&key, "acme/scorer", json!({"x": 1})).await;
    assert_eq!(status, 200, "{body}");
    b.wait_text("#delivered", |t| t == "1").await;
    assert_eq!(b.text("#dropped").await, "0");
    assert_eq!(b.text("#window").await, "4 minutes");
    b.screenshot("connected").await;

    // Readable on a phone: nothing wider than the screen.
    b.c.set_window_size(390, 844).await.unwrap();
    b.goto("/admin/insights").await;
    let overflow =
        b.c.execute(
            "return document.documentElement.scrollWidth - window.innerWidth",
            vec![],
        )
        .await
        .unwrap();
    assert!(overflow.as_i64().unwrap() <= 0, "{overflow} px too wide");
    b.screenshot("phone").await;

    // Disconnect asks first.
    b.click("#disconnect").await;
    b.c.accept_alert().await.unwrap();
    b.wait_text("#kafka-state-label", |t| t == "Not connected")
        .await;
    assert_eq!(connection(&t).await["connection"], Value::Null);
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_invalid_field_shows_the_apis_message_inline_and_nothing_is_saved() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let b = Browser::open(&t.url, "invalid").await;
    b.sign_in("/admin/insights").await;
    b.click("#open-connection").await;
    b.fill("#topic", "bad topic!").await;
    b.fill("#brokers", "kafka-without-port").await;
    b.click("input[name=connection_type][value=sasl_scram_tls]")
        .await;
    b.click("#connect").await;
    b.wait_text("#error-topic", |t| !t.is_empty()).await;

    // The same request to the API: the page shows exactly its messages, each at its field.
    let (status, body) = t
        .admin(
            Method::POST,
            "/v1/admin/insights/connection/test",
            Some(json!({
                "topic": "bad topic!",
                "brokers": "kafka-without-port",
                "connection_type": "sasl_scram_tls",
                "sasl_mechanism": "SCRAM-SHA-512",
                "username": "",
                "ca_certificate": "",
            })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let fields = body["error"]["fields"].as_array().unwrap();
    let names: Vec<&str> = fields
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for expected in ["topic", "brokers", "username", "password", "ca_certificate"] {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    for f in fields {
        let name = f["field"].as_str().unwrap();
        assert_eq!(
            b.text(&format!("#error-{name}")).await,
            f["message"].as_str().unwrap(),
            "{name}"
        );
        let invalid = b
            .find(&format!("[name={name}]"))
            .await
            .attr("aria-invalid")
            .await
            .unwrap();
        assert_eq!(invalid.as_deref(), Some("true"), "{name}");
    }
    b.screenshot("fields").await;
    assert_eq!(connection(&t).await["connection"], Value::Null);
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_fields_follow_the_type_a_wrong_password_gets_its_verdict_and_edits_keep_the_password()
{
    let broker = scram_broker();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let b = Browser::open(&t.url, "scram").await;
    b.sign_in("/admin/insights").await;
    b.click("#open-connection").await;

    assert!(!b.displayed("#sasl-fields").await);
    b.click("input[name=connection_type][value=sasl_scram_tls]")
        .await;
    assert!(b.displayed("#sasl-fields").await);
    b.click("input[name=connection_type][value=plaintext]")
        .await;
    assert!(!b.displayed("#sasl-fields").await);
    b.click("input[name=connection_type][value=sasl_scram_tls]")
        .await;

    b.fill("#topic", TOPIC).await;
    b.fill("#brokers", &format!("localhost:{}", broker.tls_port))
        .await;
    b.find("#sasl_mechanism")
        .await
        .select_by_value("SCRAM-SHA-512")
        .await
        .unwrap();
    b.fill("#username", USER).await;
    b.fill("#password", "not the password").await;
    // The CA certificate as a file upload; the page reads it into the text area.
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, broker.ca("server")).unwrap();
    b.find("#ca_file")
        .await
        .send_keys(ca.to_str().unwrap())
        .await
        .unwrap();
    let pasted =
        b.c.execute(
            "return document.getElementById('ca_certificate').value",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        pasted
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"),
        "{pasted}"
    );
    b.screenshot("form").await;

    b.click("#connect").await;
    let verdict = b
        .wait_text("#verdict", |t| !t.is_empty() && !t.starts_with("Testing"))
        .await;
    let code = b.on("#verdict", async |e| e.attr("data-code").await).await;
    assert_eq!(code.as_deref(), Some("authentication_failed"), "{verdict}");
    assert!(b.displayed("#save-anyway").await);
    b.screenshot("wrong-password").await;
    assert_eq!(connection(&t).await["connection"], Value::Null, "not saved");

    // Saved anyway: the page says what is wrong, in words.
    b.click("#save-anyway").await;
    b.wait_text("#kafka-state-label", |t| t == "Failing").await;
    let sentence = b.text("#kafka-state-sentence").await;
    assert!(sentence.contains("username or password"), "{sentence}");
    b.screenshot("failing").await;

    // The right password: tested, saved, connected.
    b.click("#open-connection").await;
    b.fill("#password", PASSWORD).await;
    b.click("#connect").await;
    b.wait_text("#kafka-state-label", |t| t == "Connected")
        .await;
    let source = b.c.source().await.unwrap();
    assert!(!source.contains(PASSWORD), "the password is in the page");
    assert!(source.contains("A password is set"));

    // Edit only the topic: the password field stays empty, the stored password is kept (the
    // test and the new producer both authenticate with it).
    b.click("#open-connection").await;
    let password = b.on("#password", async |e| e.prop("value").await).await;
    assert_eq!(password.as_deref(), Some(""));
    b.fill("#topic", OTHER_TOPIC).await;
    b.click("#connect").await;
    b.wait_text("#connection-summary", |t| t.contains(OTHER_TOPIC))
        .await;
    b.wait_text("#kafka-state-label", |t| t == "Connected")
        .await;
    let stored = connection(&t).await;
    assert_eq!(stored["connection"]["topic"], OTHER_TOPIC);
    assert_eq!(stored["connection"]["password_set"], true);
    assert!(!b.c.source().await.unwrap().contains(PASSWORD));
    b.screenshot("edited").await;
    b.close().await;
    t.stop().await;
}

/// An input that makes the probe report a metric.
fn scored() -> Value {
    json!({"reports": [common::report(&[("risk_score", json!(0.25))])]})
}

#[tokio::test(flavor = "multi_thread")]
async fn switching_insights_off_stops_payloads_from_the_next_call_on() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let version = t.probe("acme", "switch", 1, true).await;
    let key = t.new_key().await;
    let query = "algorithm=acme/switch";
    let (_, first, _) = t.call(&key, "acme/switch", scored()).await;
    t.wait_payloads(query, 1).await;

    let b = Browser::open(&t.url, "switch").await;
    b.sign_in("/admin/insights").await;
    b.goto("/admin/algorithms").await;
    let switch = "input[role=switch][data-algorithm='acme/switch']";
    assert!(b.on(switch, async |e| e.is_selected().await).await);
    b.screenshot("on").await;

    let enabled = || async {
        let (s, body) = t.admin(Method::GET, "/v1/admin/algorithms", None).await;
        assert_eq!(s, 200);
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "switch")
            .unwrap()["versions"][0]["settings"]["insights_enabled"]
            .as_bool()
            .unwrap()
    };
    b.click(switch).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while enabled().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the switch did not save"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, off, _) = t.call(&key, "acme/switch", scored()).await;

    // On again, one more call: the store ends with the first and the third, never the second.
    b.click(switch).await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !enabled().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the switch did not save"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, third, _) = t.call(&key, "acme/switch", scored()).await;
    let stored = t.wait_payloads(query, 2).await;
    let ids: Vec<&str> = stored
        .iter()
        .map(|p| p["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [third.as_deref().unwrap(), first.as_deref().unwrap()],
        "newest first; the call made while Insights was off ({off:?}) left no payload"
    );

    // Counts, and the version's latest payloads as a table.
    b.goto("/admin/algorithms").await;
    let row =
        b.c.find(Locator::XPath(
            "//tr[.//input[@data-algorithm='acme/switch']]",
        ))
        .await
        .unwrap();
    let mut counts = Vec::new();
    for cell in row.find_all(Locator::Css("td.num")).await.unwrap() {
        counts.push(cell.text().await.unwrap());
    }
    assert_eq!(counts, ["3", "2"], "calls, payloads");
    b.goto(&format!("/admin/algorithms/acme/switch/versions/{version}"))
        .await;
    let header = b.text("#payloads thead").await;
    assert!(header.contains("risk_score"), "{header}");
    let table = b.text("#payloads tbody").await;
    assert!(table.contains(first.as_deref().unwrap()), "{table}");
    assert!(table.contains(third.as_deref().unwrap()), "{table}");
    assert!(!table.contains(off.as_deref().unwrap()), "{table}");
    b.screenshot("payloads").await;
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_key_is_shown_once_and_a_revoked_key_gets_401() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "keyed", 1, false).await;
    let b = Browser::open(&t.url, "api-keys").await;
    b.sign_in("/admin/insights").await;
    b.goto("/admin/api-keys").await;
    b.fill("#key-name", "ci runner").await;
    b.click("#create-key button[type=submit]").await;
    let key = b.wait_text("#new-key-value", |t| !t.is_empty()).await;
    assert!(key.starts_with("sim"), "{key}");
    b.screenshot("created").await;

    let (status, _, body) = t.call(&key, "acme/keyed", json!({})).await;
    assert_eq!(status, 200, "{body}");

    // Listed after a reload, without the key itself.
    b.goto("/admin/api-keys").await;
    let listed = b.text("#keys tbody").await;
    assert!(listed.contains("ci runner"), "{listed}");
    assert!(!b.c.source().await.unwrap().contains(&key));

    b.click("#keys button.revoke").await;
    b.c.accept_alert().await.unwrap();
    b.wait_text("#keys tbody", |t| !t.contains("ci runner"))
        .await;
    let (status, _, _) = t.call(&key, "acme/keyed", json!({})).await;
    assert_eq!(status, 401, "a revoked key");
    b.close().await;
    t.stop().await;
}
