//! Kafka delivery against a real Kafka-protocol broker: tansu (started here, from the binary
//! that `scripts/test` builds and caches), in plaintext, and with SASL/SCRAM-SHA-256 and -512
//! behind stunnel for TLS, with a CA and server certificates this test generates. The broker is
//! read back by an independent rdkafka consumer.

mod common;

use std::time::Duration;

use common::{TestServer, consume};
use insights_testkit::scram::{PASSWORD, USER, scram_broker};
use rdkafka::ClientConfig;
use reqwest::Method;
use serde_json::{Value, json};

const TOPIC: &str = "insights";

async fn verdict(t: &TestServer, connection: Value) -> Value {
    let (s, v) = t
        .admin(
            Method::POST,
            "/v1/admin/insights/connection/test",
            Some(connection),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn plaintext_delivery_to_tansu_matches_the_embedded_store_byte_for_byte() {
    let (_broker, brokers) = insights_testkit::tansu(TOPIC);
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "plain", 2, true).await;
    let key = t.new_key().await;
    let (s, v) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(json!({"topic": TOPIC, "brokers": brokers, "connection_type": "plaintext"})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.calls(&key, "acme/plain", 15).await;
    let status = t
        .wait_kafka("delivered", |s| s["delivered"] == 15 && s["waiting"] == 0)
        .await;
    assert_eq!(status["state"], "connected");
    let v = verdict(
        &t,
        json!({"topic": TOPIC, "brokers": brokers, "connection_type": "plaintext"}),
    )
    .await;
    assert_eq!(v["code"], "ok", "{v}");

    let raw = t.raw_payloads("algorithm=acme/plain&limit=100").await;
    let messages = consume(
        ClientConfig::new().set("bootstrap.servers", &brokers),
        TOPIC,
        15,
    );
    assert_eq!(messages.len(), 15);
    for (_, m) in &messages {
        assert!(
            raw.contains(m.as_str()),
            "not byte-for-byte in the store: {m}"
        );
    }
    t.stop().await;
}

/// Regression (issue 10): with the topic missing on the cluster, the state said `connected`
/// ("Payloads are being delivered to Kafka.") while `waiting` grew. tansu creates no topic a
/// producer writes to, as a cluster with topic creation turned off.
#[tokio::test(flavor = "multi_thread")]
async fn a_topic_missing_on_tansu_is_failing_not_connected() {
    let (_broker, brokers) = insights_testkit::tansu(TOPIC);
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "nowhere", 1, true).await;
    let key = t.new_key().await;
    let connection =
        json!({"topic": "missing", "brokers": brokers, "connection_type": "plaintext"});
    assert_eq!(
        verdict(&t, connection.clone()).await["code"],
        "unknown_topic"
    );
    let (s, v) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(connection),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    t.calls(&key, "acme/nowhere", 2).await;
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (_, body) = t
            .admin(Method::GET, "/v1/admin/insights/connection", None)
            .await;
        states.push(body["status"]["state"].as_str().unwrap().to_string());
        if body["status"]["problem"] == "unknown_topic" && body["status"]["waiting"] == 2 {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!states.iter().any(|s| s == "connected"), "{states:?}");
    assert_eq!(body["status"]["state"], "failing", "{body}");
    let sentence = body["summary"]["sentence"].as_str().unwrap();
    assert!(sentence.contains("topic does not exist"), "{sentence}");
    t.stop().await;
}

/// Regression (issue 10): every verdict on a SASL/SCRAM-over-TLS connection was decided by
/// words in librdkafka's messages, which all start with `sasl_ssl://`: a refused connection was
/// blamed on TLS. Each way of getting it wrong gets its own verdict, from librdkafka's codes.
#[tokio::test(flavor = "multi_thread")]
async fn each_way_a_scram_connection_fails_gets_its_own_verdict() {
    let b = scram_broker();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let ca = b.ca("server");
    let verdicts = [
        (
            "SCRAM-SHA-256",
            PASSWORD,
            ca.clone(),
            b.tls_port,
            "ok",
            "right",
        ),
        (
            "SCRAM-SHA-512",
            PASSWORD,
            ca.clone(),
            b.tls_port,
            "ok",
            "right",
        ),
        (
            "SCRAM-SHA-512",
            PASSWORD,
            ca.clone(),
            insights_testkit::free_port(),
            "unreachable",
            "nothing listens",
        ),
        (
            "SCRAM-SHA-512",
            "wrong password",
            ca.clone(),
            b.tls_port,
            "authentication_failed",
            "wrong password",
        ),
        (
            "SCRAM-SHA-512",
            PASSWORD,
            b.ca("other"),
            b.tls_port,
            "tls_failed",
            "wrong CA",
        ),
        (
            "SCRAM-SHA-512",
            PASSWORD,
            ca.clone(),
            b.other_host_port,
            "tls_failed",
            "a certificate for another host name, from the trusted CA",
        ),
        (
            "SCRAM-SHA-512",
            PASSWORD,
            b.ca("other"),
            b.other_host_port,
            "tls_failed",
            "a certificate for another host name",
        ),
    ];
    for (mechanism, password, ca, port, code, what) in verdicts {
        let v = verdict(&t, b.connection(mechanism, password, &ca, port)).await;
        assert_eq!(v["code"], code, "{what}: {v}");
        let message = v["message"].as_str().unwrap();
        assert!(
            !message.contains(password),
            "{what}: the password is shown: {v}"
        );
        if code == "unreachable" {
            assert!(message.contains(&format!("localhost:{port}")), "{v}");
            assert!(
                !message.contains("TLS") && !message.contains("CA certificate"),
                "{what}: blamed on TLS: {v}"
            );
        }
    }
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sasl_scram_over_tls_delivers_and_a_wrong_password_says_why() {
    let b = scram_broker();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "secure", 1, true).await;
    let key = t.new_key().await;
    let ca = b.ca("server");

    // A wrong password delivers nothing and says why.
    let (s, _) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(b.connection("SCRAM-SHA-512", "wrong password", &ca, b.tls_port)),
        )
        .await;
    assert_eq!(s, 200);
    t.calls(&key, "acme/secure", 3).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, body) = t
            .admin(Method::GET, "/v1/admin/insights/connection", None)
            .await;
        let st = &body["status"];
        if st["state"] == "failing" {
            assert_eq!(st["delivered"], 0);
            assert_eq!(st["problem"], "authentication_failed", "{body}");
            let sentence = body["summary"]["sentence"].as_str().unwrap();
            assert!(sentence.contains("username or password"), "{sentence}");
            assert!(
                !body.to_string().contains("wrong password"),
                "the password is never shown"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Then each mechanism delivers; the waiting payloads go through the new connection.
    let mut delivered = 0;
    for (mechanism, n) in [("SCRAM-SHA-256", 4), ("SCRAM-SHA-512", 5)] {
        let (s, _) = t
            .admin(
                Method::PUT,
                "/v1/admin/insights/connection",
                Some(b.connection(mechanism, PASSWORD, &ca, b.tls_port)),
            )
            .await;
        assert_eq!(s, 200);
        t.calls(&key, "acme/secure", n).await;
        delivered += n as u64;
        if delivered == 4 {
            delivered += 3; // the three that waited through the wrong password
        }
        t.wait_kafka("delivered", |s| {
            s["delivered"] == delivered && s["waiting"] == 0
        })
        .await;
    }
    let messages = consume(
        ClientConfig::new()
            .set("bootstrap.servers", format!("localhost:{}", b.tls_port))
            .set("security.protocol", "sasl_ssl")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", USER)
            .set("sasl.password", PASSWORD)
            .set("ssl.ca.pem", &ca),
        TOPIC,
        12,
    );
    assert_eq!(messages.len(), 12);
    t.stop().await;
}
