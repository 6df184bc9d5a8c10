//! The v2 and v3 write paths. v2 against a real server that speaks it: VictoriaMetrics
//! (Debian's `victoria-metrics`, `/api/v2/write`). v3 against a recording HTTP server that checks
//! path, query, headers and body: no InfluxDB 3 server can run on this machine, so this one is a
//! stand-in, and says so.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insights_bridge::{BridgeConfig, BridgeStats};
use insights_testkit::{Proc, free_port, produce, tansu, wait_for_port};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

fn payload(i: usize, micros: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(micros as i128 * 1000).unwrap();
    let time = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    );
    json!({
        "risk_score": i as f64 / 10.0,
        "duration_milliseconds": 3,
        "algorithm_version": "2.1.0",
        "request_id": format!("req-00000000-0000-0000-0000-{i:012}"),
        "time": time,
        "algorithm_name": "scorer",
        "session_id": "rses-00000000-0000-0000-0000-000000000000",
        "algorithm_owner": "acme"
    })
    .to_string()
}

fn now_micros() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1000) as i64
}

async fn run_bridge(config: &str, dir: &std::path::Path, until: impl Fn(&BridgeStats) -> bool) {
    let config = BridgeConfig::parse(config, dir).unwrap();
    let stats = Arc::new(BridgeStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(insights_bridge::run_with_stats(
        config,
        shutdown.clone(),
        stats.clone(),
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !until(&stats) {
        assert!(
            Instant::now() < deadline,
            "the bridge did not get there: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn v2_writes_reach_a_server_that_speaks_the_v2_api() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let port = free_port();
    let _vm = Proc(
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg("-retentionPeriod=100y")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("victoria-metrics (Debian's victoria-metrics; scripts/test installs it)"),
    );
    wait_for_port(port);
    let base = now_micros() - 60_000_000;
    let messages: Vec<String> = (0..10)
        .map(|i| payload(i, base + i as i64 * 1000))
        .collect();
    produce(&brokers, &messages).await;
    let config = format!(
        r#"
[kafka]
brokers = "{brokers}"
topic = "insights"
group = "v2"
[influxdb]
api = "v2"
url = "http://127.0.0.1:{port}"
org = "acme"
bucket = "insights"
token = "secret-token"
[batch]
max_wait_ms = 50
"#
    );
    run_bridge(&config, dir.path(), |s| {
        s.points_written.load(std::sync::atomic::Ordering::Relaxed) >= 10
    })
    .await;

    let http = reqwest::Client::new();
    http.get(format!("http://127.0.0.1:{port}/internal/force_flush"))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let series: Vec<Value> = loop {
        let text = http
            .get(format!("http://127.0.0.1:{port}/api/v1/export"))
            .query(&[("match[]", r#"{__name__="algorithmia_risk_score"}"#)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let series: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if series
            .first()
            .is_some_and(|s| s["values"].as_array().unwrap().len() >= 10)
            || Instant::now() > deadline
        {
            break series;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(series.len(), 1, "{series:?}");
    let s = &series[0];
    assert_eq!(s["metric"]["algorithm_name"], "scorer");
    assert_eq!(s["metric"]["algorithm_owner"], "acme");
    assert_eq!(s["metric"]["algorithm_version"], "2.1.0");
    let values: Vec<f64> = s["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(values, (0..10).map(|i| i as f64 / 10.0).collect::<Vec<_>>());
    let stamps: Vec<i64> = s["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        stamps,
        (0..10)
            .map(|i| (base + i * 1000) / 1000)
            .collect::<Vec<_>>(),
        "milliseconds of the payloads' own times"
    );
}

/// One recorded request: request line, headers, body.
#[derive(Debug, Clone)]
struct Recorded {
    target: String,
    headers: Vec<(String, String)>,
    body: String,
}

/// A minimal HTTP/1.1 server that records every request and answers 204.
fn recording_server() -> (u16, Arc<Mutex<Vec<Recorded>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut headers = Vec::new();
                    let mut length = 0;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        let (k, v) = h.split_once(':').unwrap();
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap();
                        }
                        headers.push((k.to_ascii_lowercase(), v.trim().to_string()));
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    record.lock().unwrap().push(Recorded {
                        target,
                        headers,
                        body: String::from_utf8(body).unwrap(),
                    });
                    stream
                        .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn v3_requests_have_the_v3_path_query_token_and_line_protocol_body() {
    // A stand-in: no InfluxDB 3 server can run here.
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (port, seen) = recording_server();
    let messages: Vec<String> = (0..5)
        .map(|i| payload(i, 1_700_000_000_000_000 + i as i64))
        .collect();
    produce(&brokers, &messages).await;
    let config = format!(
        r#"
[kafka]
brokers = "{brokers}"
topic = "insights"
group = "v3"
[influxdb]
api = "v3"
url = "http://127.0.0.1:{port}"
database = "insights"
token = "v3-token"
[batch]
max_wait_ms = 50
"#
    );
    run_bridge(&config, dir.path(), |s| {
        s.points_written.load(std::sync::atomic::Ordering::Relaxed) >= 5
    })
    .await;
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let mut lines = Vec::new();
    for r in &seen {
        assert_eq!(
            r.target,
            "/api/v3/write_lp?db=insights&precision=nanosecond"
        );
        assert!(
            r.headers
                .contains(&("authorization".into(), "Bearer v3-token".into())),
            "{:?}",
            r.headers
        );
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| k == "content-type" && v.starts_with("text/plain"))
        );
        lines.extend(r.body.lines().map(str::to_string));
    }
    lines.sort();
    assert_eq!(lines.len(), 5);
    assert_eq!(
        lines[0],
        "algorithmia,algorithm_name=scorer,algorithm_owner=acme,algorithm_version=2.1.0 \
         session_id=\"rses-00000000-0000-0000-0000-000000000000\",request_id=\"req-00000000-0000-0000-0000-000000000000\",\
         risk_score=0,duration_milliseconds=3 1700000000000000000"
    );
}
