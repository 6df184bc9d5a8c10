//! The bridge end to end: payloads produced to a real Kafka-protocol broker (tansu), consumed by
//! the bridge and written to a real `influxd` 1.6.7 (Debian's `influxdb`), checked with InfluxQL.
//! Poison messages go to the dead-letter file, and only they. The source also over SASL/SCRAM
//! with TLS (tansu behind stunnel, from `insights_testkit::scram`).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use insights_bridge::BridgeConfig;
use insights_testkit::{free_port, influxd, influxd_on, produce, tansu};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

async fn influxql(url: &str, q: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{url}/query"))
        .query(&[("db", "insights"), ("q", q), ("epoch", "ns")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn bridge_config(brokers: &str, influx_url: &str, dir: &Path) -> BridgeConfig {
    BridgeConfig::parse(
        &format!(
            r#"
[kafka]
brokers = "{brokers}"
topic = "insights"
group = "bridge-test"
[influxdb]
api = "v1"
url = "{influx_url}"
database = "insights"
[batch]
max_points = 20
max_wait_ms = 100
[dead_letter]
directory = "{}"
"#,
            dir.join("dead").display()
        ),
        dir,
    )
    .unwrap()
}

/// Distinct request ids in InfluxDB, polled until `n` (60 s at most).
async fn wait_count(influx_url: &str, n: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = influxql(
            influx_url,
            r#"SELECT COUNT(DISTINCT("request_id")) FROM "algorithmia""#,
        )
        .await;
        let got = r["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0) as usize;
        if got >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The group's committed offsets and the topic's end offsets, summed over its 3 partitions.
fn committed_and_end(brokers: &str, group: &str) -> (usize, usize) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition("insights", p);
    }
    let committed = c
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| e.offset().to_raw().unwrap_or(0).max(0) as usize)
        .sum();
    let end = (0..3)
        .map(|p| {
            c.fetch_watermarks("insights", p, Duration::from_secs(10))
                .unwrap()
                .1 as usize
        })
        .sum();
    (committed, end)
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("dead/dead-letter.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn payload(i: usize) -> Value {
    json!({
        "risk_score": (i as f64) / 100.0,
        "approved": i % 2,
        "duration_milliseconds": 8,
        "algorithm_version": "1.0.0",
        "request_id": format!("req-00000000-0000-0000-0000-{i:012}"),
        "time": format!("2021-02-20T00:21:{:02}.{:06}", i % 60, i),
        "algorithm_name": "credit_card_approval",
        "session_id": "rses-f28bb94a-5556-4aeb-a6d2-89493626bf4f",
        "algorithm_owner": "asli"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_become_points_with_their_own_times_and_poison_is_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (_influx, influx_url) = influxd(dir.path());
    let created = influxql(&influx_url, "CREATE DATABASE insights").await;
    assert!(created["results"][0].get("error").is_none(), "{created}");

    const N: usize = 50;
    let poison = ["not json", "[1,2,3]", r#"{"algorithm_name": "x"}"#];
    let mut messages = Vec::new();
    for i in 0..N {
        messages.push(payload(i).to_string());
        if i % 20 == 0 {
            messages.push(poison[i / 20].to_string());
        }
    }
    produce(&brokers, &messages).await;
    let config = bridge_config(&brokers, &influx_url, dir.path());
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(insights_bridge::run(config, shutdown.clone()));

    let deadline = Instant::now() + Duration::from_secs(60);
    let count = loop {
        let r = influxql(
            &influx_url,
            r#"SELECT COUNT("request_id") FROM "algorithmia""#,
        )
        .await;
        let n = r["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0);
        if n as usize >= N || Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(count as usize, N);
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    // Everything was written or dead-lettered, so the group's offsets are at the end of every
    // partition (storing a dead letter's offset after a later message's would leave it behind).
    assert_eq!(committed_and_end(&brokers, "bridge-test"), (N + 3, N + 3));

    // Tags, float fields, string fields, and the payload's own timestamps.
    let fields = influxql(&influx_url, r#"SHOW FIELD KEYS FROM "algorithmia""#).await;
    let types: Vec<(String, String)> = fields["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v[0].as_str().unwrap().to_string(),
                v[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (name, want) in [
        ("risk_score", "float"),
        ("approved", "float"),
        ("duration_milliseconds", "float"),
        ("session_id", "string"),
        ("request_id", "string"),
    ] {
        assert!(
            types.contains(&(name.to_string(), want.to_string())),
            "{name}: {types:?}"
        );
    }
    let tags = influxql(&influx_url, r#"SHOW TAG KEYS FROM "algorithmia""#).await;
    let tag_keys: Vec<&str> = tags["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_str().unwrap())
        .collect();
    assert_eq!(
        tag_keys,
        ["algorithm_name", "algorithm_owner", "algorithm_version"]
    );
    let one = influxql(&influx_url, r#"SELECT "risk_score", "request_id" FROM "algorithmia" WHERE "request_id" = 'req-00000000-0000-0000-0000-000000000007'"#).await;
    let row = &one["results"][0]["series"][0]["values"][0];
    assert_eq!(
        row[0].as_i64().unwrap(),
        1_613_780_467_000_007_000,
        "time = the payload's `time`: {one}"
    );
    assert_eq!(row[1].as_f64().unwrap(), 0.07);

    let dead = std::fs::read_to_string(dir.path().join("dead/dead-letter.jsonl")).unwrap();
    let dead: Vec<Value> = dead
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&str> = dead
        .iter()
        .map(|d| d["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, poison, "exactly the poison messages");
    assert!(
        dead[2]["reason"].as_str().unwrap().contains("missing_key"),
        "{:?}",
        dead[2]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn influxd_stopped_mid_stream_loses_nothing_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (http, rpc) = (free_port(), free_port());
    let influx_dir = dir.path().join("influx");
    std::fs::create_dir_all(&influx_dir).unwrap();
    let (influx, influx_url) = influxd_on(&influx_dir, http, rpc);
    influxql(&influx_url, "CREATE DATABASE insights").await;
    let shutdown = CancellationToken::new();
    let stats = std::sync::Arc::new(insights_bridge::BridgeStats::default());
    let bridge = tokio::spawn(insights_bridge::run_with_stats(
        bridge_config(&brokers, &influx_url, dir.path()),
        shutdown.clone(),
        stats.clone(),
    ));

    let first: Vec<String> = (0..30).map(|i| payload(i).to_string()).collect();
    produce(&brokers, &first).await;
    assert_eq!(wait_count(&influx_url, 30).await, 30);
    drop(influx); // InfluxDB goes away
    let second: Vec<String> = (30..70).map(|i| payload(i).to_string()).collect();
    produce(&brokers, &second).await;
    // Bring InfluxDB back where it was once the bridge has failed to write at least twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats
        .write_retries
        .load(std::sync::atomic::Ordering::Relaxed)
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "the bridge never noticed the outage"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_influx, influx_url) = influxd_on(&influx_dir, http, rpc);
    assert_eq!(
        wait_count(&influx_url, 70).await,
        70,
        "nothing lost across the outage"
    );
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    assert!(dead_letters(dir.path()).is_empty());
    let s = &stats;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        (
            s.consumed.load(Relaxed),
            s.points_written.load(Relaxed),
            s.dead_lettered.load(Relaxed)
        ),
        (70, 70, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn points_influxdb_refuses_are_found_and_dead_lettered_and_the_rest_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (_influx, influx_url) = influxd(dir.path());
    influxql(&influx_url, "CREATE DATABASE insights").await;
    // `segment` already exists as a string field in this shard: a float for it is refused.
    let pre = reqwest::Client::new()
        .post(format!("{influx_url}/write"))
        .query(&[("db", "insights"), ("precision", "ns")])
        .body("algorithmia,algorithm_name=x,algorithm_owner=y,algorithm_version=1 segment=\"gold\" 1613780460000000000")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status(), 204);

    let mut messages = Vec::new();
    let mut refused = Vec::new();
    for i in 0..40 {
        let mut p = payload(i);
        if i % 10 == 3 {
            p["segment"] = json!(2.5);
            refused.push(p.to_string());
        }
        messages.push(p.to_string());
    }
    messages.insert(5, "{\"broken\": ".to_string());
    produce(&brokers, &messages).await;
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(insights_bridge::run(
        bridge_config(&brokers, &influx_url, dir.path()),
        shutdown.clone(),
    ));
    // 40 payloads, 4 refused; the pre-written point has no request_id.
    assert_eq!(wait_count(&influx_url, 36).await, 36);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dead_letters(dir.path()).len() < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    let dead = dead_letters(dir.path());
    let mut got: Vec<String> = dead
        .iter()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    let mut want = refused.clone();
    want.push("{\"broken\": ".to_string());
    got.sort();
    want.sort();
    assert_eq!(got, want, "the dead letters are exactly the bad ones");
    assert!(
        dead.iter()
            .filter(|d| d["reason"]
                .as_str()
                .unwrap()
                .starts_with("influxdb_rejected"))
            .count()
            == 4,
        "{dead:?}"
    );
    assert_eq!(
        wait_count(&influx_url, 36).await,
        36,
        "every other payload was written"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_bridges_in_one_group_share_the_partitions_and_write_everything_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (_influx, influx_url) = influxd(dir.path());
    influxql(&influx_url, "CREATE DATABASE insights").await;
    let shutdown = CancellationToken::new();
    let stats: Vec<_> = (0..2)
        .map(|_| std::sync::Arc::new(insights_bridge::BridgeStats::default()))
        .collect();
    let tasks: Vec<_> = stats
        .iter()
        .map(|s| {
            tokio::spawn(insights_bridge::run_with_stats(
                bridge_config(&brokers, &influx_url, dir.path()),
                shutdown.clone(),
                s.clone(),
            ))
        })
        .collect();
    // Both bridges hold partitions (3 between them) before anything is produced.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(stats
        .iter()
        .all(|s| s.assigned_partitions.load(Relaxed) > 0)
        && stats
            .iter()
            .map(|s| s.assigned_partitions.load(Relaxed))
            .sum::<u64>()
            == 3)
    {
        assert!(Instant::now() < deadline, "the group never settled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Keys spread the payloads over the three partitions.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for i in 0..300 {
        let body = payload(i).to_string();
        let key = format!("k{i}");
        producer
            .send(
                FutureRecord::<str, str>::to("insights")
                    .key(&key)
                    .payload(&body),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
    assert_eq!(wait_count(&influx_url, 300).await, 300);
    shutdown.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let consumed: Vec<u64> = stats.iter().map(|s| s.consumed.load(Relaxed)).collect();
    assert!(
        consumed.iter().all(|c| *c > 0),
        "both bridges did part of the work: {consumed:?}"
    );
    assert_eq!(consumed.iter().sum::<u64>(), 300, "{consumed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_can_go_to_a_kafka_topic_instead() {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    // The dead-letter topic, created as an administrator would: the bridge creates no topic, and
    // tansu's memory storage does not create one when the bridge first writes to it.
    insights_testkit::create_topic(&brokers, "insights-dead", 1);
    let (_influx, influx_url) = influxd(dir.path());
    influxql(&influx_url, "CREATE DATABASE insights").await;
    let mut messages: Vec<String> = (0..10).map(|i| payload(i).to_string()).collect();
    messages.insert(3, "garbage".to_string());
    messages.insert(7, r#"{"time": "2021-02-20T00:00:00.000000"}"#.to_string());
    produce(&brokers, &messages).await;
    let config = BridgeConfig::parse_with(
        &format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopic = \"insights\"\ngroup = \"dl-topic\"\n\
             [influxdb]\napi = \"v1\"\nurl = \"{influx_url}\"\ndatabase = \"insights\"\n[batch]\nmax_wait_ms = 50\n"
        ),
        dir.path(),
        &[("dead_letter.topic".into(), "insights-dead".into())],
    )
    .unwrap();
    let stats = std::sync::Arc::new(insights_bridge::BridgeStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(insights_bridge::run_with_stats(
        config,
        shutdown.clone(),
        stats.clone(),
    ));
    assert_eq!(wait_count(&influx_url, 10).await, 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    while stats
        .dead_lettered
        .load(std::sync::atomic::Ordering::Relaxed)
        < 2
    {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(
        !dir.path().join("dead-letter").exists(),
        "no file when a topic is configured"
    );

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "dl-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["insights-dead"]).unwrap();
    let mut letters: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while letters.len() < 2 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            letters.push(serde_json::from_slice(m.payload().unwrap()).unwrap());
        }
    }
    let got: Vec<&str> = letters
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["garbage", r#"{"time": "2021-02-20T00:00:00.000000"}"#]
    );
    assert!(
        letters[1]["reason"]
            .as_str()
            .unwrap()
            .starts_with("missing_key"),
        "{letters:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sasl_scram_source_over_tls_is_read_like_a_plaintext_one() {
    use insights_testkit::scram::{PASSWORD, TOPIC, USER, scram_broker};
    let broker = scram_broker();
    let dir = tempfile::tempdir().unwrap();
    let (_influx, influx_url) = influxd(dir.path());
    influxql(&influx_url, "CREATE DATABASE insights").await;
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, broker.ca("server")).unwrap();
    let brokers = format!("localhost:{}", broker.tls_port);

    // Produced over SASL_SSL as the server's delivery does, by a plain rdkafka producer.
    const N: usize = 30;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-256")
        .set("sasl.username", USER)
        .set("sasl.password", PASSWORD)
        .set("ssl.ca.location", ca.to_str().unwrap())
        .create()
        .unwrap();
    for i in 0..N {
        let body = payload(i).to_string();
        producer
            .send(
                FutureRecord::<str, str>::to(TOPIC).payload(&body).key("k"),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
    }

    let config = BridgeConfig::parse(
        &format!(
            r#"
[kafka]
brokers = "{brokers}"
topic = "{TOPIC}"
group = "scram"
connection_type = "sasl_scram_tls"
sasl_mechanism = "SCRAM-SHA-256"
username = "{USER}"
password = "{PASSWORD}"
ca_certificate_file = "ca.pem"
[influxdb]
api = "v1"
url = "{influx_url}"
database = "insights"
[batch]
max_points = 10
max_wait_ms = 50
[dead_letter]
directory = "{}"
"#,
            dir.path().join("dead").display()
        ),
        dir.path(),
    )
    .unwrap();
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(insights_bridge::run(config, shutdown.clone()));
    assert_eq!(wait_count(&influx_url, N).await, N);
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
    assert!(dead_letters(dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_during_an_influxdb_outage_does_not_wait_for_it_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (http, rpc) = (free_port(), free_port());
    let influx_url = format!("http://127.0.0.1:{http}"); // nothing there yet
    const N: usize = 20;
    let messages: Vec<String> = (0..N).map(|i| payload(i).to_string()).collect();
    produce(&brokers, &messages).await;

    let stats = Arc::new(insights_bridge::BridgeStats::default());
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(insights_bridge::run_with_stats(
        bridge_config(&brokers, &influx_url, dir.path()),
        shutdown.clone(),
        stats.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.write_retries.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the bridge never tried to write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGTERM while InfluxDB is down: the bridge stops (the guard only catches a hang; the
    // retry backoff alone would reach 30 s) and commits nothing it did not write.
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), bridge)
        .await
        .expect("the bridge stops without waiting for InfluxDB")
        .unwrap()
        .unwrap();
    assert_eq!(committed_and_end(&brokers, "bridge-test"), (0, N));

    // InfluxDB is back; the next start writes everything.
    let influx_dir = dir.path().join("influxdb");
    std::fs::create_dir(&influx_dir).unwrap();
    let (_influx, influx_url) = influxd_on(&influx_dir, http, rpc);
    influxql(&influx_url, "CREATE DATABASE insights").await;
    let shutdown = CancellationToken::new();
    let bridge = tokio::spawn(insights_bridge::run(
        bridge_config(&brokers, &influx_url, dir.path()),
        shutdown.clone(),
    ));
    assert_eq!(wait_count(&influx_url, N).await, N);
    shutdown.cancel();
    bridge.await.unwrap().unwrap();
}
