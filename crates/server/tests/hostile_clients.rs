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
