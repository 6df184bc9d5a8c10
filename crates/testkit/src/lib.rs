//! Real services for tests and benchmarks, started here and stopped when dropped: tansu (a
//! Kafka-protocol broker, built and cached by `scripts/test`) and `influxd` (Debian's
//! `influxdb`). Shared by the server's, the bridge's and the binary's tests, so that every suite
//! starts them the same way.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod scram;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// A child process, killed and reaped when dropped.
pub struct Proc(pub Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn tansu_bin() -> PathBuf {
    let p = std::env::var("INSIGHTS_TANSU")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap())
                .join(".cache/insights/tansu-0.6.0/bin/tansu")
        });
    assert!(
        p.exists(),
        "tansu is not at {} (scripts/test builds it)",
        p.display()
    );
    p
}

/// A plaintext tansu with memory storage and `topic` (3 partitions) created; returns the
/// process and its `host:port`. Memory storage does not create a topic when a producer writes
/// to it (the producer's messages time out; checked on 0.6.0): create any other topic a test
/// uses with [`create_topic`], as an administrator of a real cluster would.
pub fn tansu(topic: &str) -> (Proc, String) {
    tansu_on(free_port(), topic)
}

/// `tansu` on a given port (to start a broker where a client is already trying to connect).
pub fn tansu_on(port: u16, topic: &str) -> (Proc, String) {
    let url = format!("tcp://127.0.0.1:{port}");
    let p = Proc(
        Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    tansu_ok(&[
        "topic",
        "create",
        topic,
        "--partitions",
        "3",
        "--broker",
        &url,
    ]);
    (p, format!("127.0.0.1:{port}"))
}

/// A plaintext tansu on `port` with SQLite storage in `dir` (which survives a restart, as a real
/// broker's log does), and `topics` (3 partitions each) created unless they exist already.
pub fn tansu_sqlite_on(port: u16, dir: &Path, topics: &[&str]) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    let p = Proc(
        Command::new(tansu_bin())
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                // tansu resolves a sqlite:// path against its working directory.
                "sqlite://tansu.db",
            ])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);
    for topic in topics {
        // Refused when the topic exists (a restarted broker): that is the state wanted.
        let _ = Command::new(tansu_bin())
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                "3",
                "--broker",
                &url,
            ])
            .output()
            .unwrap();
    }
    p
}

/// Runs a tansu client command until it succeeds (the broker may still be starting).
pub fn tansu_ok(args: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new(tansu_bin()).args(args).output().unwrap();
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tansu {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates `topic` with `partitions` partitions on the broker at `brokers` (`host:port`).
pub fn create_topic(brokers: &str, topic: &str, partitions: u32) {
    tansu_ok(&[
        "topic",
        "create",
        topic,
        "--partitions",
        &partitions.to_string(),
        "--broker",
        &format!("tcp://{brokers}"),
    ]);
}

/// `influxd` 1.6.7 with everything under `dir`, HTTP on a free loopback port.
pub fn influxd(dir: &Path) -> (Proc, String) {
    influxd_on(dir, free_port(), free_port())
}

/// `influxd` on given ports (to start it again where it was).
pub fn influxd_on(dir: &Path, http: u16, rpc: u16) -> (Proc, String) {
    let conf = dir.join("influxdb.conf");
    std::fs::write(
        &conf,
        format!(
            r#"reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http}"
  log-enabled = false
[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
"#,
            d = dir.display()
        ),
    )
    .unwrap();
    let p = Proc(
        Command::new("influxd")
            .args(["run", "-config"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("influxd (Debian's influxdb; scripts/test installs it)"),
    );
    wait_for_port(http);
    (p, format!("http://127.0.0.1:{http}"))
}

pub async fn produce(brokers: &str, messages: &[String]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    for m in messages {
        producer
            .send(
                FutureRecord::<str, str>::to("insights").key("k").payload(m),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
    }
}

/// `chromedriver` (Debian's `chromium-driver`) on a free loopback port, in its own process
/// group so that the Chromium it starts goes with it; returns the driver and its URL.
///
/// Chromium keeps its profile and singleton socket in `$TMPDIR`, and a killed Chromium never
/// removes them (625 were left in `/tmp` by a few days of test runs), so the driver and its
/// browsers get a temporary directory of their own that goes with the guard.
pub fn chromedriver() -> (Driver, String) {
    use std::os::unix::process::CommandExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let group = ProcGroup(
        Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env("TMPDIR", tmp.path())
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver runs (scripts/test installs Debian's chromium-driver)"),
    );
    wait_for_port(port);
    (
        Driver {
            _group: group,
            _tmp: tmp,
        },
        format!("http://127.0.0.1:{port}"),
    )
}

/// A running `chromedriver` and the temporary directory its browsers write in: the group is
/// killed first, then the directory removed (fields drop in declaration order).
pub struct Driver {
    _group: ProcGroup,
    _tmp: tempfile::TempDir,
}

/// A child process leading its own process group; the whole group is killed when dropped.
pub struct ProcGroup(pub Child);
impl Drop for ProcGroup {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}
