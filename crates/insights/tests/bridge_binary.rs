//! The `insights bridge` process: killed with SIGKILL mid-stream and started again, InfluxDB ends
//! with every payload exactly once (points are stamped with the payload's time, so a message read
//! again overwrites its own point); started before Kafka and InfluxDB exist, it waits, says so,
//! and delivers once they are up. Real tansu and influxd, as in the bridge's own tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use insights_testkit::{free_port, influxd, influxd_on, produce, tansu, tansu_on};
use serde_json::{Value, json};

struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &std::path::Path) -> Bridge {
    start_logging(config, Stdio::null())
}

fn start_logging(config: &std::path::Path, log: impl Into<Stdio>) -> Bridge {
    Bridge(
        Command::new(env!("CARGO_BIN_EXE_insights"))
            .args(["bridge", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the insights binary starts"),
    )
}

fn payloads(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            json!({
                "risk_score": i as f64 / 1000.0,
                "duration_milliseconds": 1,
                "algorithm_version": "1.0.0",
                "request_id": format!("req-00000000-0000-0000-0000-{i:012}"),
                "time": format!("2021-02-20T01:{:02}:{:02}.{:06}", i / 60, i % 60, i),
                "algorithm_name": "scorer",
                "session_id": "rses-00000000-0000-0000-0000-000000000000",
                "algorithm_owner": "acme"
            })
            .to_string()
        })
        .collect()
}

async fn create_database(influx: &str) {
    reqwest::Client::new()
        .post(format!("{influx}/query"))
        .query(&[("q", "CREATE DATABASE insights")])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

const DISTINCT: &str = r#"SELECT COUNT(DISTINCT("request_id")) FROM "algorithmia""#;
const POINTS: &str = r#"SELECT COUNT("request_id") FROM "algorithmia""#;

async fn count(influx: &str, q: &str) -> u64 {
    let r: Value = reqwest::Client::new()
        .post(format!("{influx}/query"))
        .query(&[("db", "insights"), ("q", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_then_restart_writes_every_payload_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (_influx, influx) = influxd(dir.path());
    create_database(&influx).await;
    const N: u64 = 400;
    produce(&brokers, &payloads(N)).await;
    let metrics_port = free_port();
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopic = \"insights\"\ngroup = \"sigkill\"\n\
             [influxdb]\napi = \"v1\"\nurl = \"{influx}\"\ndatabase = \"insights\"\n\
             [batch]\nmax_points = 10\nmax_wait_ms = 20\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
    .unwrap();

    let (distinct, points) = (DISTINCT, POINTS);
    let bridge = start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&influx, points).await < 40 {
        assert!(Instant::now() < deadline, "the bridge wrote nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(bridge); // SIGKILL, mid-stream
    let before = count(&influx, points).await;
    assert!(
        before < N,
        "killed before the end ({before} of {N} written)"
    );

    let _bridge = start(&config);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&influx, distinct).await < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} after the restart",
            count(&influx, distinct).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&influx, points).await, N, "no payload twice");

    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("insights_bridge_points_written_total"),
        "{metrics}"
    );
    assert!(
        metrics.contains("insights_bridge_write_duration_seconds_bucket"),
        "{metrics}"
    );
}

/// Waits until the bridge's log contains `text`, failing if the bridge exits or a minute passes.
async fn wait_for_log(bridge: &mut Bridge, log: &std::path::Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let logged = std::fs::read_to_string(log).unwrap_or_default();
        if logged.contains(text) {
            return;
        }
        if let Some(status) = bridge.0.try_wait().unwrap() {
            panic!("the bridge exited ({status}) instead of waiting:\n{logged}");
        }
        assert!(
            Instant::now() < deadline,
            "no {text:?} in the log:\n{logged}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn started_before_kafka_and_influxdb_it_waits_says_so_and_delivers() {
    let dir = tempfile::tempdir().unwrap();
    let (kafka_port, http_port, rpc_port) = (free_port(), free_port(), free_port());
    let config = dir.path().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nbrokers = \"127.0.0.1:{kafka_port}\"\ntopic = \"insights\"\ngroup = \"late\"\n\
             [influxdb]\napi = \"v1\"\nurl = \"http://127.0.0.1:{http_port}\"\ndatabase = \"insights\"\n\
             [batch]\nmax_points = 10\nmax_wait_ms = 20\n[metrics]\nlisten = \"127.0.0.1:{}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let log = dir.path().join("bridge.log");
    let mut bridge = start_logging(&config, std::fs::File::create(&log).unwrap());

    // Nothing listens on the broker port: the bridge stays up and says why it is idle.
    wait_for_log(
        &mut bridge,
        &log,
        "Kafka is unreachable or failing; the bridge keeps retrying",
    )
    .await;
    let (_kafka, brokers) = tansu_on(kafka_port, "insights");
    const N: u64 = 50;
    produce(&brokers, &payloads(N)).await;

    // Kafka is up, InfluxDB is not: the batch is held and retried, and the log says so.
    wait_for_log(&mut bridge, &log, "writing to InfluxDB failed; retrying").await;
    let influx_dir = dir.path().join("influxdb");
    std::fs::create_dir(&influx_dir).unwrap();
    let (_influx, influx) = influxd_on(&influx_dir, http_port, rpc_port);
    create_database(&influx).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&influx, DISTINCT).await < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} once both were up:\n{}",
            count(&influx, DISTINCT).await,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(&influx, POINTS).await, N, "no payload twice");
}
