//! Kafka delivery against librdkafka's mock cluster (in process, with fault injection; it has
//! no SASL or TLS, which the tests against a real broker cover). An independent rdkafka consumer
//! reads the topic back.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{TestServer, consume};
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use reqwest::Method;
use serde_json::{Value, json};

/// The tests of this file run one at a time. A mock broker brought back up listens again on its
/// old port, and librdkafka aborts the process if that port was taken meanwhile, which the other
/// tests' client connections (ephemeral ports) can do when they run alongside.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TOPIC: &str = "insights";

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let mock = MockCluster::new(3).expect("mock cluster");
    mock.create_topic(TOPIC, 3, 3).expect("topic");
    mock
}

/// The objects of a JSON array, as the exact text of each.
fn split_top_level(array: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0, false, false, 0);
    for (i, c) in array.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' if !in_string => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    out.insert(array[start..=i].to_string());
                }
            }
            _ => {}
        }
    }
    out
}

async fn connect(t: &TestServer, brokers: &str) {
    let (s, body) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(json!({"topic": TOPIC, "brokers": brokers, "connection_type": "plaintext"})),
        )
        .await;
    assert_eq!(s, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_reach_the_topic_byte_for_byte_as_stored() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "kafka", 2, true).await;
    let key = t.new_key().await;
    connect(&t, &mock.bootstrap_servers()).await;
    let ids = t.calls(&key, "acme/kafka", 20).await;
    t.wait_kafka("20 delivered", |s| s["delivered"] == 20).await;

    let messages = consume(
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()),
        TOPIC,
        20,
    );
    assert_eq!(messages.len(), 20, "no duplicates");
    // The store's API answers the stored bytes as they are: `[p1,p2,...]`.
    let raw = t.raw_payloads("algorithm=acme/kafka&limit=100").await;
    let stored: HashSet<String> = split_top_level(&raw);
    assert_eq!(stored.len(), 20);
    for (k, v) in &messages {
        assert_eq!(k, "acme/kafka", "messages are keyed by owner/name");
        assert!(stored.contains(v), "not byte-for-byte in the store: {v}");
        let parsed: Value = serde_json::from_str(v).unwrap();
        assert!(ids.contains(&parsed["request_id"].as_str().unwrap().to_string()));
    }
    let s = t.kafka_status().await;
    assert_eq!(
        (
            s["state"].as_str(),
            s["waiting"].as_u64(),
            s["dropped"].as_u64()
        ),
        (Some("connected"), Some(0), Some(0))
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_down_for_part_of_the_window_then_up_lose_and_duplicate_nothing() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "outage", 2, true).await;
    let key = t.new_key().await;
    connect(&t, &mock.bootstrap_servers()).await;
    t.calls(&key, "acme/outage", 5).await;
    t.wait_kafka("5 delivered", |s| s["delivered"] == 5).await;
    for b in 1..=3 {
        mock.broker_down(b).unwrap();
    }
    let ids = t.calls(&key, "acme/outage", 30).await;
    let s = t.wait_kafka("30 waiting", |s| s["waiting"] == 30).await;
    assert_eq!(s["delivered"], 5);
    for b in 1..=3 {
        mock.broker_up(b).unwrap();
    }
    t.wait_kafka("35 delivered", |s| {
        s["delivered"] == 35 && s["waiting"] == 0
    })
    .await;
    let messages = consume(
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()),
        TOPIC,
        35,
    );
    let request_ids: Vec<String> = messages
        .iter()
        .map(|(_, v)| {
            serde_json::from_str::<Value>(v).unwrap()["request_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(request_ids.len(), 35, "every payload once");
    let distinct: HashSet<&String> = request_ids.iter().collect();
    assert_eq!(distinct.len(), 35, "no duplicates");
    assert!(ids.iter().all(|id| distinct.contains(id)));
    assert_eq!(t.kafka_status().await["dropped"], 0);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn brokers_down_past_a_short_window_count_every_payload_as_dropped() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start_with(dir.path(), |c| {
        c.kafka.window = Duration::from_secs(2);
        c.kafka.attempt_timeout = Duration::from_millis(500);
    })
    .await;
    t.probe("acme", "expire", 1, true).await;
    let key = t.new_key().await;
    connect(&t, &mock.bootstrap_servers()).await;
    for b in 1..=3 {
        mock.broker_down(b).unwrap();
    }
    t.calls(&key, "acme/expire", 12).await;
    let s = t.wait_kafka("12 dropped", |s| s["dropped"] == 12).await;
    assert_eq!(
        (s["delivered"].as_u64(), s["waiting"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(s["dropped_by_reason"]["window_expired"], 12);
    // The recorder is global to this test process, where other tests expire payloads too: the
    // status above is this server's exact count, the metric at least includes it.
    assert!(
        t.metric("insights_payloads_dropped_total{reason=\"kafka_window_expired\"}")
            .await
            >= 12.0
    );
    assert_eq!(s["state"], "failing");
    assert!(
        s["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "{s}"
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retriable_request_errors_are_retried_until_delivered() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 5],
    );
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "retry", 1, true).await;
    let key = t.new_key().await;
    connect(&t, &mock.bootstrap_servers()).await;
    t.calls(&key, "acme/retry", 10).await;
    t.wait_kafka("10 delivered", |s| s["delivered"] == 10).await;
    let distinct: HashSet<String> = consume(
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()),
        TOPIC,
        10,
    )
    .into_iter()
    .map(|(_, v)| v)
    .collect();
    assert_eq!(distinct.len(), 10);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_delivers_what_was_spooled_during_an_outage() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "durable", 1, true).await;
    let key = t.new_key().await;
    connect(&t, &mock.bootstrap_servers()).await;
    for b in 1..=3 {
        mock.broker_down(b).unwrap();
    }
    let ids = t.calls(&key, "acme/durable", 8).await;
    t.wait_kafka("8 waiting", |s| s["waiting"] == 8).await;
    t.stop().await;

    for b in 1..=3 {
        mock.broker_up(b).unwrap();
    }
    let t = TestServer::start(dir.path()).await;
    t.wait_kafka("8 delivered after the restart", |s| {
        s["delivered"] == 8 && s["waiting"] == 0
    })
    .await;
    let got: HashSet<String> = consume(
        ClientConfig::new().set("bootstrap.servers", mock.bootstrap_servers()),
        TOPIC,
        8,
    )
    .iter()
    .map(|(_, v)| {
        serde_json::from_str::<Value>(v).unwrap()["request_id"]
            .as_str()
            .unwrap()
            .to_string()
    })
    .collect();
    assert_eq!(got, ids.into_iter().collect());
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_restart_payloads_past_their_window_are_dropped_not_sent() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    let dir = tempfile::tempdir().unwrap();
    let short = |c: &mut insights::serve::ServerConfig| {
        c.kafka.window = Duration::from_secs(1);
        c.kafka.attempt_timeout = Duration::from_secs(1);
    };
    let t = TestServer::start_with(dir.path(), short).await;
    t.probe("acme", "stale", 1, true).await;
    let key = t.new_key().await;
    // First a connection to a port where nothing listens (no broker taken down and brought
    // back: the mock cluster aborts if its port was taken meanwhile).
    let nowhere = format!("127.0.0.1:{}", insights_testkit::free_port());
    connect(&t, &nowhere).await;
    t.calls(&key, "acme/stale", 5).await;
    t.wait_kafka("5 waiting", |s| s["waiting"] == 5).await;
    t.stop().await;
    // Stopped past the window (the window is what is tested: real time has to pass).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = TestServer::start_with(dir.path(), |c| {
        short(c);
        c.kafka_connection = Some(insights_kafka::ConnectionRequest {
            topic: TOPIC.into(),
            brokers: mock.bootstrap_servers(),
            connection_type: "plaintext".into(),
            ..Default::default()
        });
    })
    .await;
    t.wait_kafka("5 dropped as expired", |s| {
        s["dropped_by_reason"]["window_expired"] == 5 && s["waiting"] == 0
    })
    .await;
    let (_, got) = t
        .admin(Method::GET, "/v1/admin/insights/connection", None)
        .await;
    assert_eq!(
        got["status"]["delivered"], 0,
        "nothing stale was sent: {got}"
    );
    t.stop().await;
}

#[tokio::test]
async fn bad_connection_settings_get_400_naming_each_field_and_nothing_is_saved() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let cases = [
        (
            json!({"topic": "", "brokers": "k:1", "connection_type": "plaintext"}),
            vec!["topic"],
        ),
        (
            json!({"topic": "a b", "brokers": "k:1", "connection_type": "plaintext"}),
            vec!["topic"],
        ),
        (
            json!({"topic": "t", "brokers": "", "connection_type": "plaintext"}),
            vec!["brokers"],
        ),
        (
            json!({"topic": "t", "brokers": "k1:9092,,k2:9092", "connection_type": "plaintext"}),
            vec!["brokers"],
        ),
        (
            json!({"topic": "t", "brokers": "k1", "connection_type": "plaintext"}),
            vec!["brokers"],
        ),
        (
            json!({"topic": "t", "brokers": "kafka://k1:9092", "connection_type": "plaintext"}),
            vec!["brokers"],
        ),
        (
            json!({"topic": "t", "brokers": "k1:9092, k2:9092", "connection_type": "plaintext"}),
            vec!["brokers"],
        ),
        (
            json!({"topic": "t", "brokers": "k1:99999", "connection_type": "plaintext"}),
            vec!["brokers"],
        ),
        (
            json!({"topic": "t", "brokers": "k:1", "connection_type": "tls"}),
            vec!["connection_type"],
        ),
        (
            json!({"topic": "t", "brokers": "k:1", "connection_type": "sasl_scram_tls"}),
            vec!["sasl_mechanism", "username", "password", "ca_certificate"],
        ),
        (
            json!({"topic": "t", "brokers": "k:1", "connection_type": "sasl_scram_tls", "sasl_mechanism": "SCRAM-SHA-512", "username": "u", "password": "p", "ca_certificate": "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----"}),
            vec!["ca_certificate"],
        ),
        (
            json!({"topic": "t", "brokers": "k:1", "connection_type": "plaintext", "password": "p"}),
            vec!["password"],
        ),
    ];
    for (body, fields) in cases {
        let (s, answer) = t
            .admin(
                Method::PUT,
                "/v1/admin/insights/connection",
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, 400, "{body} → {answer}");
        let got: Vec<&str> = answer["error"]["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{body} → {answer}");
        for f in &fields {
            assert!(
                answer["error"]["message"].as_str().unwrap().contains(f),
                "{answer}"
            );
        }
    }
    let (s, answer) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(
                json!({"topic": "t", "brokers": "k:1", "connection_type": "plaintext", "extra": 1}),
            ),
        )
        .await;
    assert_eq!(s, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `extra`")
    );
    let (_, got) = t
        .admin(Method::GET, "/v1/admin/insights/connection", None)
        .await;
    assert_eq!(got["connection"], Value::Null, "nothing was saved");
    assert_eq!(got["status"]["state"], "not_configured");

    // An edit may keep the stored password, but never to send it to other brokers.
    let ca = include_str!("../../kafka/tests/data/test-ca.pem");
    let sasl = |brokers: &str, password: Option<&str>| {
        let mut c = json!({"topic": "t", "brokers": brokers, "connection_type": "sasl_scram_tls",
            "sasl_mechanism": "SCRAM-SHA-512", "username": "u", "ca_certificate": ca});
        if let Some(p) = password {
            c["password"] = p.into();
        }
        c
    };
    let (s, answer) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(sasl("127.0.0.1:1,127.0.0.1:2", Some("s3cret"))),
        )
        .await;
    assert_eq!(s, 200, "{answer}");
    assert!(!answer.to_string().contains("s3cret"));
    let (s, _) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(sasl("127.0.0.1:1,127.0.0.1:2", None)),
        )
        .await;
    assert_eq!(s, 200, "same brokers: the stored password is kept");
    let (s, answer) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(sasl("evil.example:9093,127.0.0.1:2", None)),
        )
        .await;
    assert_eq!(s, 400, "{answer}");
    assert_eq!(answer["error"]["field"], "password");
    // Nor through another TLS trust: a new CA certificate needs the password again.
    let other_ca = include_str!("../../kafka/tests/data/test-ca.pem").replace('\n', "\r\n");
    let mut new_ca = sasl("127.0.0.1:1,127.0.0.1:2", None);
    new_ca["ca_certificate"] = format!("{other_ca}\n{}", ca).into();
    let (s, answer) = t
        .admin(Method::PUT, "/v1/admin/insights/connection", Some(new_ca))
        .await;
    assert_eq!(s, 400, "{answer}");
    assert_eq!(
        answer["error"]["fields"].as_array().unwrap().len(),
        1,
        "{answer}"
    );
    assert_eq!(answer["error"]["field"], "password");
    let (_, got) = t
        .admin(Method::GET, "/v1/admin/insights/connection", None)
        .await;
    assert_eq!(got["connection"]["brokers"], "127.0.0.1:1,127.0.0.1:2");
    assert_eq!(got["connection"]["password_set"], true);
    assert!(!got.to_string().contains("s3cret"));
    let sqlite = std::fs::read(dir.path().join("insights.sqlite")).unwrap();
    assert!(
        !String::from_utf8_lossy(&sqlite).contains("s3cret"),
        "sealed at rest"
    );

    // A stored connection that can no longer be read (secret.key replaced) is reported, and a
    // new one can be saved over it.
    t.stop().await;
    std::fs::write(dir.path().join("secret.key"), [7u8; 32]).unwrap();
    let t = TestServer::start(dir.path()).await;
    let (s, got) = t
        .admin(Method::GET, "/v1/admin/insights/connection", None)
        .await;
    assert_eq!(s, 200, "{got}");
    assert_eq!(got["connection"], Value::Null);
    assert!(
        got["stored_connection_error"]
            .as_str()
            .unwrap()
            .contains("save the connection again"),
        "{got}"
    );

    // One broker is accepted, with a warning.
    let (s, answer) = t
        .admin(
            Method::PUT,
            "/v1/admin/insights/connection",
            Some(json!({"topic": "t", "brokers": "127.0.0.1:1", "connection_type": "plaintext"})),
        )
        .await;
    assert_eq!(s, 200);
    assert!(
        answer["warnings"][0]
            .as_str()
            .unwrap()
            .contains("only one bootstrap broker")
    );
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_connection_test_says_unreachable_unknown_topic_or_ok() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = cluster();
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let test = |body: Value| {
        let t = &t;
        async move {
            t.admin(
                Method::POST,
                "/v1/admin/insights/connection/test",
                Some(body),
            )
            .await
        }
    };
    let (s, v) = test(json!({"topic": TOPIC, "brokers": mock.bootstrap_servers(), "connection_type": "plaintext"})).await;
    assert_eq!((s, v["code"].as_str()), (200, Some("ok")), "{v}");
    let (_, v) = test(json!({"topic": "nope", "brokers": mock.bootstrap_servers(), "connection_type": "plaintext"})).await;
    assert_eq!(v["code"], "unknown_topic", "{v}");
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, v) = test(
        json!({"topic": TOPIC, "brokers": closed.to_string(), "connection_type": "plaintext"}),
    )
    .await;
    assert_eq!(v["code"], "unreachable", "{v}");
    assert!(
        v["message"].as_str().unwrap().contains(&closed.to_string()),
        "{v}"
    );
    t.stop().await;
}

/// Regression (issue 10): with the topic missing on the cluster, the state said `connected`
/// ("Payloads are being delivered to Kafka.") while `waiting` grew.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_topic_is_failing_in_words_until_it_is_created() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let mock = MockCluster::new(3).expect("mock cluster");
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "missing", 1, true).await;
    let key = t.new_key().await;
    connect(&t, &mock.bootstrap_servers()).await;
    t.calls(&key, "acme/missing", 3).await;
    let mut states = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let body = loop {
        let (_, body) = t
            .admin(Method::GET, "/v1/admin/insights/connection", None)
            .await;
        states.push(body["status"]["state"].as_str().unwrap().to_string());
        // (The payloads reach the spool a moment after their calls answered.)
        if body["status"]["problem"] == "unknown_topic" && body["status"]["waiting"] == 3 {
            break body;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!states.iter().any(|s| s == "connected"), "{states:?}");
    assert_eq!(body["status"]["state"], "failing", "{body}");
    assert_eq!(body["summary"]["label"], "Failing");
    let sentence = body["summary"]["sentence"].as_str().unwrap();
    assert!(sentence.contains("topic does not exist"), "{sentence}");

    // Created on the cluster: noticed, and what waited is delivered.
    mock.create_topic(TOPIC, 3, 3).expect("topic");
    let s = t
        .wait_kafka("3 delivered", |s| {
            s["delivered"] == 3 && s["waiting"] == 0 && s["state"] == "connected"
        })
        .await;
    assert_eq!(s["problem"], Value::Null, "{s}");
    t.stop().await;
}
