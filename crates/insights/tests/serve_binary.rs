//! `insights serve` as a process: killed with SIGKILL while Kafka is down, then restarted, it
//! delivers every payload that was spooled (Kafka here is librdkafka's mock cluster, in this
//! test process; the server reaches it over TCP like any broker); its algorithms do not
//! inherit its secrets from the environment; and text from outside cannot forge its log lines.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use reqwest::Method;
use serde_json::{Value, json};

const ADMIN: &str = "sigkill-test-token";
const TOPIC: &str = "insights";

struct Server {
    child: Child,
    url: String,
    http: reqwest::Client,
    /// Every line the server logged so far (stderr).
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(data: &Path) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_insights"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .env("INSIGHTS_ADMIN_TOKEN", ADMIN)
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
        if let Some(addr) = line.split("serving addr=").nth(1) {
            break format!("http://{}", addr.split_whitespace().next().unwrap());
        }
    };
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Server {
        child,
        url,
        http: reqwest::Client::new(),
        log,
    }
}

impl Server {
    /// Registers the server tests' probe algorithm as `acme/{name}` and publishes a version
    /// with `settings`.
    async fn probe(&self, name: &str, settings: Value) {
        let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/algorithms/probe");
        self.admin(
            Method::POST,
            "/v1/algorithms/acme",
            Some(json!({"name": name, "source": {"path": probe, "command": ["python3", "-u", "src/Algorithm.py"]}})),
        )
        .await;
        self.admin(
            Method::POST,
            &format!("/v1/algorithms/acme/{name}/versions"),
            Some(json!({"settings": settings})),
        )
        .await;
    }

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

    async fn wait_status(&self, what: &str, done: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let s = self
                .admin(Method::GET, "/v1/admin/insights/connection", None)
                .await;
            if done(&s["status"]) {
                return;
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
async fn sigkill_during_an_outage_then_restart_delivers_every_spooled_payload() {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic(TOPIC, 3, 3).unwrap();
    let data = tempfile::tempdir().unwrap();

    let s = start(data.path());
    s.probe("killed", json!({"insights_enabled": true})).await;
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
    s.admin(
        Method::PUT,
        "/v1/admin/insights/connection",
        Some(json!({"topic": TOPIC, "brokers": mock.bootstrap_servers(), "connection_type": "plaintext"})),
    )
    .await;
    for b in 1..=3 {
        mock.broker_down(b).unwrap();
    }
    let mut ids = HashSet::new();
    for i in 0..25 {
        let resp = s
            .http
            .post(format!("{}/v1/algo/acme/killed", s.url))
            .header("Authorization", format!("Simple {key}"))
            .json(&json!({"echo": i}))
            .send()
            .await
            .unwrap();
        ids.insert(resp.headers()["x-request-id"].to_str().unwrap().to_string());
    }
    s.wait_status("25 waiting", |st| st["waiting"] == 25).await;
    drop(s); // SIGKILL: no shutdown, no flush

    for b in 1..=3 {
        mock.broker_up(b).unwrap();
    }
    let s = start(data.path());
    s.wait_status("25 delivered after the restart", |st| {
        st["delivered"] == 25 && st["waiting"] == 0
    })
    .await;

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "sigkill-check")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[TOPIC]).unwrap();
    let mut got = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < ids.len() && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let v: Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            got.insert(v["request_id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(got, ids);
}

#[tokio::test(flavor = "multi_thread")]
async fn algorithms_do_not_see_the_servers_secrets_in_their_environment() {
    let data = tempfile::tempdir().unwrap();
    // The server gets its admin token (and would get the Kafka password) from INSIGHTS_*.
    let s = start(data.path());
    s.probe("nosy", json!({})).await;
    let body: Value = s
        .http
        .post(format!("{}/v1/algo/acme/nosy", s.url))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .json(&json!({"env": ["INSIGHTS_ADMIN_TOKEN", "PATH", "ALGORITHMIA_API"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let env = &body["result"]["env"];
    assert_eq!(env["INSIGHTS_ADMIN_TOKEN"], Value::Null, "{body}");
    assert!(env["PATH"].is_string(), "{body}");
    assert!(
        env["ALGORITHMIA_API"]
            .as_str()
            .unwrap()
            .contains("/worker/"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metric_name_cannot_forge_a_log_line_or_reach_the_terminal() {
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    s.probe("forger", json!({"insights_enabled": true})).await;
    let forged = "x\n2026-12-01T00:00:00.000000Z ERROR insights: FORGED line\u{1b}[2J";
    let body: Value = s
        .http
        .post(format!("{}/v1/algo/acme/forger", s.url))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .json(&json!({"reports": [[{"insight_key": forged, "insight_value": "not a number"}]]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["result"]["reports"][0][0], 400, "{body}");
    // The rejection is logged (a warning naming the key), on one line, escaped.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let line = loop {
        let found = s
            .log
            .lock()
            .unwrap()
            .iter()
            .find(|l| l.contains("insight rejected"))
            .cloned();
        if let Some(l) = found {
            break l;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no rejection was logged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        line.contains("FORGED line"),
        "the key is in the log: {line}"
    );
    assert!(
        line.contains("\\n2026") && line.contains("\\u{1b}[2J"),
        "{line}"
    );
    let log = s.log.lock().unwrap().join("\n");
    assert!(!log.contains('\u{1b}'), "no ESC byte reached the log");
    assert!(
        !log.lines()
            .any(|l| l.starts_with("2026-12-01T00:00:00.000000Z")),
        "no line of the log was forged:\n{log}"
    );
}

/// Each thread's (niceness, scheduling policy) in process `pid`, by thread name
/// (`/proc/<pid>/task/*/stat`; policy 0 is SCHED_OTHER, 5 SCHED_IDLE).
fn priority_by_thread(pid: u32) -> std::collections::BTreeMap<String, HashSet<(i32, i32)>> {
    let mut out = std::collections::BTreeMap::<String, HashSet<(i32, i32)>>::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue; // the thread ended in between
        };
        let nice = insights::background::niceness_in_stat(&stat).expect("a stat line");
        let policy = insights::background::policy_in_stat(&stat).expect("a stat line");
        out.entry(comm.trim().to_string())
            .or_default()
            .insert((nice, policy));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn delivery_and_datadog_run_idle_alerting_at_nice_10_below_the_request_path() {
    let data = tempfile::tempdir().unwrap();
    // The defaults, as `insights serve` runs without a config file.
    let s = start(data.path());
    let threads = priority_by_thread(s.child.id());
    // Thread names are cut at 15 bytes by the kernel. (nice, policy): 0 is SCHED_OTHER, 5
    // SCHED_IDLE (delivery's runtime and Datadog's thread, while they keep up).
    for (name, want) in [
        ("tokio-rt-worker", (0, 0)),
        ("insights-backgr", (10, 5)),
        ("insights-alerti", (10, 0)),
        ("series-maintena", (10, 0)),
        ("kafka-producer", (10, 5)),
        ("datadog-deliver", (15, 5)),
    ] {
        let got = threads
            .get(name)
            .unwrap_or_else(|| panic!("no thread named {name}: {threads:?}"));
        assert_eq!(*got, HashSet::from([want]), "{name}: {threads:?}");
    }
    // The request path runs in short scheduler slices (Linux 6.12+; before, there are none to
    // read), the background in the default one, which this test's own thread runs in.
    let default = insights::background::slice_of(insights::background::current_tid()).unwrap();
    if !default.is_zero() {
        let slices = slice_by_thread(s.child.id());
        for (name, want) in [
            ("insights", insights::background::REQUEST_SLICE),
            ("tokio-rt-worker", insights::background::REQUEST_SLICE),
            ("insights-backgr", default),
            ("insights-alerti", default),
            ("series-maintena", default),
            ("kafka-producer", default),
            ("datadog-deliver", default),
        ] {
            let got = slices
                .get(name)
                .unwrap_or_else(|| panic!("no thread named {name}: {slices:?}"));
            assert_eq!(*got, HashSet::from([want]), "{name}: {slices:?}");
        }
    }
}

/// The scheduler slice of each of process `pid`'s threads, by thread name.
fn slice_by_thread(pid: u32) -> std::collections::BTreeMap<String, HashSet<Duration>> {
    let mut out = std::collections::BTreeMap::<String, HashSet<Duration>>::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let task = task.unwrap();
        let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
        let (Ok(comm), Ok(slice)) = (
            std::fs::read_to_string(task.path().join("comm")),
            insights::background::slice_of(tid),
        ) else {
            continue; // the thread ended in between
        };
        out.entry(comm.trim().to_string())
            .or_default()
            .insert(slice);
    }
    out
}

/// The priorities of Kafka delivery's threads in process `pid`: the producer thread's, the
/// `rdkafka` crate's polling thread's and librdkafka's (`rdk:*`).
fn kafka_priorities(pid: u32) -> HashSet<(i32, i32)> {
    priority_by_thread(pid)
        .into_iter()
        .filter(|(name, _)| {
            name == "kafka-producer" || name == "producer pollin" || name.starts_with("rdk:")
        })
        .flat_map(|(_, p)| p)
        .collect()
}

/// Waits until `pid`'s Kafka threads are at exactly `want` (they change when the server's
/// follower looks); the deadline only keeps a broken build from hanging.
async fn kafka_threads_become(pid: u32, what: &str, want: (i32, i32)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let threads = priority_by_thread(pid);
        let librdkafka = threads.keys().filter(|n| n.starts_with("rdk:")).count();
        if librdkafka > 0 && kafka_priorities(pid) == HashSet::from([want]) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {threads:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_threads_run_idle_until_payloads_wait_without_progress() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(TOPIC, 1, 1).unwrap();
    let data = tempfile::tempdir().unwrap();
    let s = start(data.path());
    let pid = s.child.id();
    s.probe("waits", json!({"insights_enabled": true})).await;
    s.admin(
        Method::PUT,
        "/v1/admin/insights/connection",
        Some(json!({"topic": TOPIC, "brokers": mock.bootstrap_servers(), "connection_type": "plaintext"})),
    )
    .await;
    s.wait_status("connected", |st| st["state"] == "connected")
        .await;
    // librdkafka's threads, started from the producer thread, inherited SCHED_IDLE from it.
    kafka_threads_become(pid, "SCHED_IDLE, connected", (10, 5)).await;

    mock.broker_down(1).unwrap();
    let resp = s
        .http
        .post(format!("{}/v1/algo/acme/waits", s.url))
        .header("Authorization", format!("Bearer {ADMIN}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    s.wait_status("1 waiting", |st| st["waiting"] == 1).await;
    // Nothing acknowledged for longer than KAFKA_MAX_LAG: raised, at nice 10 still.
    kafka_threads_become(pid, "SCHED_OTHER while the payload waits", (10, 0)).await;

    mock.broker_up(1).unwrap();
    s.wait_status("delivered", |st| st["delivered"] == 1 && st["waiting"] == 0)
        .await;
    kafka_threads_become(pid, "SCHED_IDLE again", (10, 5)).await;
    let metrics = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let raised = |line: &str| {
        line.starts_with("insights_background_raised_total")
            && line.contains("lane=\"kafka\"")
            && line.contains("cause=\"lag\"")
    };
    assert!(metrics.lines().any(raised), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("insights_background_raised{")
                && l.contains("lane=\"kafka\"")
                && l.ends_with(" 0")),
        "{metrics}"
    );
}
