//! `insights serve` as a process, with `[datadog]` in its config file and the key in
//! `INSIGHTS_DATADOG_API_KEY`: killed with SIGKILL while the intake is down, then restarted
//! once it is up, it delivers every payload it had spooled, each once. The intake is a local
//! stand-in (`datadog_stand_in`: no real Datadog is reachable from here).

mod datadog_stand_in;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use datadog_stand_in::Intake;
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "datadog-sigkill-test-token";
const KEY: &str = "0123456789abcdef0123456789abcdef";

struct Server {
    child: Child,
    url: String,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGKILL: no shutdown, no flush.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path, config: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("INSIGHTS_ADMIN_TOKEN", ADMIN)
        .env("INSIGHTS_DATADOG_API_KEY", KEY)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("the insights binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the server printed its address")
            .unwrap();
        assert!(!line.contains(KEY), "the key is in the log: {line}");
        if let Some(addr) = line.split("serving addr=").nth(1) {
            break format!("http://{}", addr.split_whitespace().next().unwrap());
        }
    };
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            assert!(!line.contains(KEY), "the key is in the log: {line}");
        }
    });
    Server {
        child,
        url,
        http: reqwest::Client::new(),
    }
}

impl Server {
    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    async fn wait_datadog(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = self
                .admin(Method::GET, "/v1/admin/insights/datadog", None)
                .await;
            if done(&s["status"]) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_a_datadog_outage_then_restart_delivers_every_spooled_payload_once() {
    // Reserved, with nothing listening: the intake is down.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let config = data.path().join("insights.toml");
    std::fs::write(
        &config,
        format!(
            "[datadog]\nsite = \"datadoghq.eu\"\nurl = \"http://{port}\"\ntags = [\"env:test\"]\nlegacy_id_tags = true\n"
        ),
    )
    .unwrap();
    let server_data = data.path().join("data");

    let s = start(&server_data, &config);
    let got = s
        .admin(Method::GET, "/v1/admin/insights/datadog", None)
        .await;
    assert_eq!(got["settings"]["site"], "datadoghq.eu");
    assert_eq!(got["settings"]["api_key_set"], true);
    assert!(!got.to_string().contains(KEY));
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/algorithms/probe");
    s.admin(
        Method::POST,
        "/v1/algorithms/acme",
        Some(json!({"name": "killed", "source": {"path": probe, "command": ["python3", "-u", "src/Algorithm.py"]}})),
    )
    .await;
    s.admin(
        Method::POST,
        "/v1/algorithms/acme/killed/versions",
        Some(json!({"settings": {"insights_enabled": true}})),
    )
    .await;
    let key = s
        .admin(
            Method::POST,
            "/v1/admin/api-keys",
            Some(json!({"name": "k"})),
        )
        .await["key"]
        .as_str()
        .unwrap()
        .to_string();
    let mut ids = Vec::new();
    for i in 0..25 {
        let resp = s
            .http
            .post(format!("{}/v1/algo/acme/killed", s.url))
            .header("Authorization", format!("Simple {key}"))
            .json(&json!({"echo": i}))
            .send()
            .await
            .unwrap();
        ids.push(resp.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    s.wait_datadog("25 waiting, failing", |st| {
        st["waiting"] == 25 && st["state"] == "failing"
    })
    .await;
    drop(s); // SIGKILL

    let intake = Intake::start_on(port, KEY).await;
    let s = start(&server_data, &config);
    s.wait_datadog("25 delivered after the restart", |st| {
        st["delivered"] == 25 && st["waiting"] == 0
    })
    .await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for series in intake.accepted_series() {
        assert_eq!(series["type"], 3);
        if series["metric"] == "algorithmia.duration_milliseconds" {
            let rid = series["tags"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|t| t.as_str().unwrap().strip_prefix("request_id:"))
                .expect("legacy_id_tags is on")
                .to_string();
            *seen.entry(rid).or_default() += 1;
        }
    }
    let mut got: Vec<&String> = seen.keys().collect();
    got.sort();
    let mut want: Vec<&String> = ids.iter().collect();
    want.sort();
    assert_eq!(got, want);
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    drop(s);
    intake.stop();
}
