//! Clients that do not behave, against a real server on 127.0.0.1:0: piles of half-sent
//! requests, more connections than allowed, wrong admin tokens, oversized and malformed
//! requests. Each test pins a finding of the outside probe (issue 10) and fails without its fix.

mod common;

use std::time::Duration;

use common::TestServer;
use insights_server::ConnectionLimits;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

fn host(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Reads until the server closes the connection; what it sent before closing.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    // A guard against hanging forever if the server never closes (the bug), not a measure.
    tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .ok();
    out
}

/// A metric's value from `/metrics`; retried while the server is at its connection limit
/// (closed connections free their slots as the server notices, not at once).
async fn metric(s: &TestServer, line_start: &str) -> f64 {
    // A connection of its own each time: a pooled one may have been closed as idle.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut text = String::new();
    for _ in 0..1000 {
        // At the limit the 503 may come before the request is written (hyper's client calls
        // that an unexpected message): both mean "try again".
        let r = http.get(format!("{}/metrics", s.url)).send().await;
        if let Ok(r) = r
            && r.status() == 200
        {
            text = r.text().await.unwrap();
            break;
        }
        tokio::task::yield_now().await;
    }
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn half_sent_requests_do_not_keep_others_out_and_are_closed_after_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.connections = ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            max_connections: 1000,
        }
    })
    .await;
    let addr = host(&s.url);
    let mut pile = Vec::new();
    for _ in 0..200 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"POST /v1/algo/a/b HTTP/1.1\r\nHost: x\r\nContent-")
            .await
            .unwrap();
        pile.push(c);
    }
    // A well-behaved client is answered while the pile is open.
    let ok = s
        .http
        .get(format!("{}/healthz", s.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Every half-sent request is closed by the server: each read ends.
    for c in &mut pile {
        read_to_close(c).await;
    }
    let closed = metric(
        &s,
        "insights_http_connections_closed_total{reason=\"header_timeout\"}",
    )
    .await;
    assert!(closed >= 200.0, "closed for the header timeout: {closed}");
    // An idle kept-alive connection is closed the same way.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_to_close(&mut idle).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_the_connection_limit_a_client_is_told_why_in_the_api_shape() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_with(dir.path(), |c| {
        c.connections = ConnectionLimits {
            header_read_timeout: Duration::from_secs(30),
            max_connections: 3,
        }
    })
    .await;
    let addr = host(&s.url);
    // Three connections that each completed a request hold the three slots (kept alive).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 256];
        let n = c.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(c);
    }
    let mut fourth = TcpStream::connect(&addr).await.unwrap();
    fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = String::from_utf8(read_to_close(&mut fourth).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    let body: serde_json::Value =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("http.max_connections"),
        "{body}"
    );
    // A slot freed is a slot served: once one held connection closes, a new client gets in.
    drop(held.pop());
    let mut served = false;
    for _ in 0..200 {
        let mut c = TcpStream::connect(&addr).await.unwrap();
        c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        if read_to_close(&mut c).await.starts_with(b"HTTP/1.1 200") {
            served = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served, "a freed slot was never given to a new connection");
    drop(held);
    assert!(metric(&s, "insights_http_connections_refused_total").await >= 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_reports_are_refused_early_and_refused_names_are_echoed_cut() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "big", 1, true).await;
    let key = t.new_key().await;
    // A 15 MB metric name once came back whole in the answer and the log. Now a report past
    // 64 KiB is refused before it is parsed, with a 413 the algorithm gets to read (its client
    // saw a broken pipe before)...
    let huge = "n".repeat(1 << 20);
    // ...and a refused name within the bound is echoed cut.
    let long = "m".repeat(20_000);
    let (status, _, body) = t
        .call(
            &key,
            "acme/big",
            serde_json::json!({"reports": [
                common::report(&[(huge.as_str(), "x".into())]),
                common::report(&[(long.as_str(), "not a number".into()), ("ok", 1.into())]),
            ]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let reports = &body["result"]["reports"];
    assert_eq!(reports[0][0], 413, "{reports:.300}");
    let message = reports[0][1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("65536 bytes") && message.contains("report limit"),
        "{message}"
    );
    assert_eq!(reports[1][0], 400);
    let answer = reports[1][1].to_string();
    assert!(
        answer.len() < 1000,
        "a refused name is echoed cut: {} bytes",
        answer.len()
    );
    assert!(answer.contains("(20000 bytes in all)"), "{answer}");
    // The valid part of the second report is kept.
    let payloads = t.wait_payloads("algorithm=acme/big", 1).await;
    assert_eq!(payloads[0]["ok"], 1, "{}", payloads[0]);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_error_is_in_the_api_shape_and_names_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_with(dir.path(), |c| c.max_body_bytes = 4096).await;
    t.probe("acme", "shape", 1, true).await;
    let key = t.new_key().await;
    let error = |r: serde_json::Value| r["error"]["message"].as_str().unwrap_or("").to_string();

    // Over the body limit: 413, naming the setting, read by the client (not a reset).
    let r = t
        .http
        .post(format!("{}/v1/algo/acme/shape", t.url))
        .header("Authorization", format!("Simple {key}"))
        .header("Content-Type", "application/json")
        .body(format!("\"{}\"", "x".repeat(200_000)))
        .send()
        .await
        .expect("the 413 is read, not a broken pipe");
    assert_eq!(r.status(), 413);
    let m = error(r.json().await.unwrap());
    assert!(
        m.contains("limits.max_body_bytes") && m.contains("4096"),
        "{m}"
    );

    // A wrong method: 405 with the methods allowed.
    let r = t
        .http
        .get(format!("{}/v1/algo/acme/shape", t.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
    let m = error(r.json().await.unwrap());
    assert!(
        m.contains("GET is not accepted here; the Allow header"),
        "{m}"
    );

    // A malformed query string: 400 in the shape, with the framework's explanation.
    let (s, body) = t
        .admin(
            reqwest::Method::GET,
            "/v1/admin/insights/payloads?limit=lots",
            None,
        )
        .await;
    assert_eq!(s, 400, "{body}");
    assert!(error(body.clone()).contains("limit"), "{body}");
    assert_eq!(body["error"]["error_type"], "InputError");

    // Names a user types refuse control characters (a NUL once reached the panel's HTML).
    for name in ["nul\u{0}byte", "two\nlines", "esc\u{1b}[31m"] {
        let (s, body) = t
            .admin(
                reqwest::Method::POST,
                "/v1/admin/api-keys",
                Some(serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(s, 400, "{name:?}: {body}");
        assert_eq!(body["error"]["field"], "name");
        assert!(error(body).contains("control characters"));
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_data_directory_is_readable_by_its_owner_only_new_or_existing() {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    // A new one.
    let fresh = dir.path().join("fresh");
    let t = TestServer::start(&fresh).await;
    t.probe("acme", "modes", 1, true).await;
    let key = t.new_key().await;
    t.call(&key, "acme/modes", serde_json::json!({})).await;
    t.wait_payloads("algorithm=acme/modes", 1).await;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("spool")), 0o700);
    for f in [
        "insights.sqlite",
        "insights.sqlite-wal",
        "insights.sqlite-shm",
        "lock",
        "secret.key",
        "spool/resolved.log",
    ] {
        assert_eq!(mode(&fresh.join(f)), 0o600, "{f}");
    }
    t.stop().await;
    // One an earlier release left world-readable: tightened, and it still works.
    std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o755)).unwrap();
    for f in [
        "insights.sqlite",
        "insights.sqlite-wal",
        "insights.sqlite-shm",
    ] {
        let _ = std::fs::set_permissions(fresh.join(f), std::fs::Permissions::from_mode(0o644));
    }
    let t = TestServer::start(&fresh).await;
    assert_eq!(mode(&fresh), 0o700);
    assert_eq!(mode(&fresh.join("insights.sqlite")), 0o600);
    assert_eq!(
        t.payloads("algorithm=acme/modes").await.len(),
        1,
        "the data is still there"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn numbers_are_kept_exact_or_refused_by_name_never_changed() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "exact", 1, true).await;
    let key = t.new_key().await;
    // A pretty-printed body with an integer past u64: the algorithm (Python, exact integers)
    // gets it and answers it digit for digit.
    let big = "123456789012345678901234567890";
    let r = t
        .http
        .post(format!("{}/v1/algo/acme/exact", t.url))
        .header("Authorization", format!("Simple {key}"))
        .header("Content-Type", "application/json")
        .body(format!(
            "{{\n  \"echo\": {big},\n  \"reports\": [[{{\"insight_key\": \"tiny\", \"insight_value\": \"1e-400\"}}]]\n}}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains(&format!("\"echo\": {big}")), "{text}");
    // A metric an f64 cannot hold is refused naming it, not stored as 0 (sent as the Java
    // client sends values, a string: Python's own JSON would already have read it as 0.0).
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    let report = &body["result"]["reports"][0];
    assert_eq!(report[0], 400, "{report}");
    assert_eq!(report[1]["error"]["field"], "tiny");
    assert!(
        report[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("does not fit a 64-bit float"),
        "{report}"
    );
    let payloads = t.wait_payloads("algorithm=acme/exact", 1).await;
    assert!(payloads[0].get("tiny").is_none(), "{}", payloads[0]);
    t.stop().await;
}
