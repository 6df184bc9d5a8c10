//! `insights bridge` killed with SIGKILL mid-stream and started again: InfluxDB ends with every
//! payload exactly once (points are stamped with the payload's time, so a message read again
//! overwrites its own point). Real tansu and influxd, as in the bridge's own tests.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use insights_testkit::{free_port, influxd, produce, tansu};
use serde_json::{Value, json};

struct Bridge(Child);

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(config: &std::path::Path) -> Bridge {
    Bridge(
        Command::new(env!("CARGO_BIN_EXE_insights"))
            .args(["bridge", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the insights binary starts"),
    )
}

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
    reqwest::Client::new()
        .post(format!("{influx}/query"))
        .query(&[("q", "CREATE DATABASE insights")])
        .send()
        .await
        .unwrap();
    const N: u64 = 400;
    let messages: Vec<String> = (0..N)
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
        .collect();
    produce(&brokers, &messages).await;
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

    let distinct = r#"SELECT COUNT(DISTINCT("request_id")) FROM "algorithmia""#;
    let points = r#"SELECT COUNT("request_id") FROM "algorithmia""#;
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
