//! A real server on 127.0.0.1:0 with its own data directory, and a client for it.
#![allow(dead_code, unreachable_pub)]

pub mod browser;

use std::path::{Path, PathBuf};

use insights::serve::{RunningServer, ServerConfig, start};
use serde_json::{Value, json};

pub const ADMIN: &str = "test-admin-token";

/// Waits until `ok` holds (something another process or task does: a file written, a counter
/// raised), checking every 10 ms; fails naming `what` after 30 s.
pub async fn eventually(what: &str, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ok().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

pub struct TestServer {
    pub server: RunningServer,
    pub url: String,
    pub data_dir: PathBuf,
    pub http: reqwest::Client,
}

/// The probe algorithm's source (see tests/algorithms/probe/src/Algorithm.py).
pub fn probe_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/algorithms/probe")
}

pub fn probe_command() -> Value {
    json!(["python3", "-u", "src/Algorithm.py"])
}

impl TestServer {
    pub async fn start(data_dir: &Path) -> TestServer {
        Self::start_with(data_dir, |_| {}).await
    }

    pub async fn start_with(data_dir: &Path, adjust: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let mut config = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            data_dir.to_path_buf(),
            ADMIN.to_string(),
        );
        adjust(&mut config);
        let server = start(config).await.expect("server starts");
        TestServer {
            url: server.url(),
            server,
            data_dir: data_dir.to_path_buf(),
            http: reqwest::Client::new(),
        }
    }

    pub async fn stop(self) {
        self.server.shutdown().await;
    }

    pub async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request sent");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Registers the probe as `owner/name` and publishes one version with Insights `insights`.
    pub async fn probe(&self, owner: &str, name: &str, pool_size: u32, insights: bool) -> String {
        self.probe_from(owner, name, &probe_dir(), pool_size, insights)
            .await
    }

    pub async fn probe_from(
        &self,
        owner: &str,
        name: &str,
        dir: &Path,
        pool_size: u32,
        insights: bool,
    ) -> String {
        let (s, body) = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/algorithms/{owner}"),
                Some(json!({
                    "name": name,
                    "source": {"path": dir, "command": probe_command()},
                    "settings": {"pool_size": pool_size},
                })),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        self.publish(owner, name, json!({"insights_enabled": insights}))
            .await
    }

    pub async fn publish(&self, owner: &str, name: &str, settings: Value) -> String {
        let (s, body) = self
            .admin(
                reqwest::Method::POST,
                &format!("/v1/algorithms/{owner}/{name}/versions"),
                Some(json!({"version_info": {"version_type": "minor"}, "settings": settings})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body["version_info"]["semantic_version"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn new_key(&self) -> String {
        let (s, body) = self
            .admin(
                reqwest::Method::POST,
                "/v1/admin/api-keys",
                Some(json!({"name": "test"})),
            )
            .await;
        assert_eq!(s, 201, "{body}");
        body["key"].as_str().unwrap().to_string()
    }

    /// Calls `/v1/algo/{path}` with a JSON body; returns status, x-request-id and body.
    pub async fn call(&self, key: &str, path: &str, input: Value) -> (u16, Option<String>, Value) {
        let resp = self
            .http
            .post(format!("{}/v1/algo/{path}", self.url))
            .header("Authorization", format!("Simple {key}"))
            .json(&input)
            .send()
            .await
            .expect("request sent");
        let status = resp.status().as_u16();
        let rid = resp
            .headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string());
        (status, rid, resp.json().await.expect("JSON answer"))
    }

    pub async fn payloads(&self, query: &str) -> Vec<Value> {
        let (s, body) = self
            .admin(
                reqwest::Method::GET,
                &format!("/v1/admin/insights/payloads?{query}"),
                None,
            )
            .await;
        assert_eq!(s, 200, "{body}");
        body.as_array().unwrap().clone()
    }

    /// Waits until the store holds `n` payloads matching `query` (delivery is asynchronous by
    /// design), polling the API; fails after 10 s.
    pub async fn wait_payloads(&self, query: &str, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let got = self.payloads(query).await;
            if got.len() >= n {
                return got;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "expected {n} payloads for {query}, have {}",
                got.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one Prometheus sample line starting with `prefix`, or 0.
    pub async fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .await
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    }
}

pub fn report(items: &[(&str, Value)]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|(k, v)| json!({"insight_key": k, "insight_value": v}))
            .collect(),
    )
}

// --- Kafka -------------------------------------------------------------------------------

impl TestServer {
    /// The Kafka connection's live status.
    pub async fn kafka_status(&self) -> Value {
        let (s, body) = self
            .admin(reqwest::Method::GET, "/v1/admin/insights/connection", None)
            .await;
        assert_eq!(s, 200, "{body}");
        body["status"].clone()
    }

    /// Waits until the Kafka status satisfies `done` (delivery is asynchronous), for 30 s.
    pub async fn wait_kafka(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let s = self.kafka_status().await;
            if done(&s) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}: {s}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// `n` calls of `path`, each reporting one metric; returns their request ids.
    pub async fn calls(&self, key: &str, path: &str, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..n {
            let (s, rid, body) = self
                .call(key, path, json!({"reports": [report(&[("i", json!(i))])]}))
                .await;
            assert_eq!(s, 200, "{body}");
            ids.push(rid.unwrap());
        }
        ids
    }

    /// The stored payloads as the API sends them: the exact bytes, `[p1,p2,...]`.
    pub async fn raw_payloads(&self, query: &str) -> String {
        self.http
            .get(format!("{}/v1/admin/insights/payloads?{query}", self.url))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// Reads `topic` from the beginning with a new consumer group until `n` messages arrived (30 s
/// at most), then half a second more to catch duplicates; returns (key, value) pairs.
pub fn consume(config: &mut rdkafka::ClientConfig, topic: &str, n: usize) -> Vec<(String, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use std::time::{Duration, Instant};
    static GROUP: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let group = format!(
        "check-{}-{}",
        std::process::id(),
        GROUP.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let consumer: BaseConsumer = config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let text = |b: Option<&[u8]>| String::from_utf8_lossy(b.unwrap_or_default()).into_owned();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settle: Option<Instant> = None;
    while settle.is_none_or(|s| Instant::now() < s) && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            out.push((text(m.key()), text(m.payload())));
        }
        if out.len() >= n && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_millis(500));
        }
    }
    out
}
