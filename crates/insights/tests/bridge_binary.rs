//! The `insights bridge` process: killed with SIGKILL mid-stream and started again, InfluxDB ends
//! with every payload exactly once (points are stamped with the payload's time, so a message read
//! again overwrites its own point); restarted where the broker gives it no partition, it says so;
//! started before Kafka and InfluxDB exist, it waits, says so, and delivers once they are up.
//! Real tansu and influxd, as in the bridge's own tests.

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

/// A bridge config for the tests: `kafka_extra` goes into `[kafka]`.
fn write_config(
    path: &std::path::Path,
    brokers: &str,
    influx: &str,
    group: &str,
    metrics_port: u16,
    kafka_extra: &str,
) {
    std::fs::write(
        path,
        format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopic = \"insights\"\ngroup = \"{group}\"\n{kafka_extra}\n\
             [influxdb]\napi = \"v1\"\nurl = \"{influx}\"\ndatabase = \"insights\"\n\
             [batch]\nmax_points = 10\nmax_wait_ms = 20\n[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
        ),
    )
    .unwrap();
}

async fn metrics(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(), // not listening yet
    }
}

/// The value of an unlabelled gauge or counter in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Waits until the bridge on `port` reports `name` = `value` in `/metrics`; returns when it
/// saw it.
async fn wait_for_metric(port: u16, name: &str, value: f64) -> Instant {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = metrics(port).await;
        if metric(&page, name) == Some(value) {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "no {name} {value} in /metrics:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Kills `bridge` with SIGKILL (no commit, no LeaveGroup: its member stays in the group on the
/// broker until its session times out) 1.5 s after it reported its assignment at `assigned`.
/// librdkafka heartbeats right after an assignment and then every 3 s, so this kills it between
/// two heartbeats, more than a second after the last: the timing in which a restart without
/// static membership holds nothing on tansu 0.6.0 (see the regression test below). The pause
/// places the kill in the heartbeat cycle; it does not wait for anything.
async fn kill_between_heartbeats(bridge: Bridge, assigned: Instant) {
    tokio::time::sleep_until((assigned + Duration::from_millis(1500)).into()).await;
    drop(bridge);
}

/// Waits until InfluxDB holds every payload, then checks it holds each exactly once.
async fn every_payload_exactly_once(influx: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(influx, DISTINCT).await < N {
        assert!(
            Instant::now() < deadline,
            "only {} of {N} {what}",
            count(influx, DISTINCT).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(count(influx, POINTS).await, N, "no payload twice");
}

const N: u64 = 400;

/// Restarted at once, as systemd (`Restart=always`) or Kubernetes restarts a killed process:
/// within a second, well inside the dead member's session (10 s). Without static membership,
/// what tansu 0.6.0 does then depends on when the dead member last heartbeated: the restarted
/// bridge gets every partition some 12 s later, or none, ever (the regression test below pins
/// that). So this test used to pass or fail on timing, and failed on a fresh machine. Now the
/// kill is placed where a dynamic member's restart gets nothing, and the bridge has a
/// `group_instance_id`: the restarted bridge takes the dead member's place in the group and its
/// assignment (6 s after the restart: tansu holds each JoinGroup and SyncGroup of a static member
/// for 3 s), whatever the heartbeat cycle, the session timeout, or the speed of the restart.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_stream_then_restart_writes_every_payload_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (_influx, influx) = influxd(dir.path());
    create_database(&influx).await;
    let metrics_port = free_port();
    let config = dir.path().join("bridge.toml");
    write_config(
        &config,
        &brokers,
        &influx,
        "sigkill",
        metrics_port,
        "group_instance_id = \"bridge-1\"",
    );
    let all = payloads(N);
    let (first_half, second_half) = all.split_at(all.len() / 2);

    let first = start(&config);
    let assigned = wait_for_metric(metrics_port, "insights_bridge_assigned_partitions", 3.0).await;
    produce(&brokers, first_half).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&influx, POINTS).await < 40 {
        assert!(Instant::now() < deadline, "the bridge wrote nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Killed in the timing that leaves a dynamic member's restart with nothing: without
    // group_instance_id, this test fails.
    kill_between_heartbeats(first, assigned).await;
    // Mid-stream: the stream goes on while the bridge is down. What the killed one wrote but did
    // not commit is read and written again, overwriting its own points.
    produce(&brokers, second_half).await;
    let _bridge = start(&config);
    every_payload_exactly_once(&influx, "after the restart").await;

    let page = metrics(metrics_port).await;
    assert_eq!(
        metric(&page, "insights_bridge_assigned_partitions"),
        Some(3.0),
        "the restarted bridge holds every partition:\n{page}"
    );
    assert!(
        page.contains("insights_bridge_points_written_total"),
        "{page}"
    );
    assert!(
        page.contains("insights_bridge_write_duration_seconds_bucket"),
        "{page}"
    );
}

/// Pins tansu 0.6.0's consumer-group bug, and what the bridge does about it. A bridge restarted
/// at once without static membership joins while the killed one is still in the group; tansu
/// names the dead member the group's leader, so the restarted one's SyncGroup is refused
/// ("rebalance in progress") and it rejoins, every 3 s. When the dead member's session (10 s)
/// runs out at one of those SyncGroups, tansu drops it and takes the restarted member's
/// SyncGroup, which as a follower's carries no assignment, as the group's final one: the
/// restarted bridge holds no partition, and no rebalance ever follows.
///
/// Whether that happens depends on when the dead member last heartbeated: tansu counts the
/// restarted member's session from its first JoinGroup, so if the dead one's last contact was
/// less than about a second before the restart, both run out at the same SyncGroup and the
/// restarted one rejoins alone and gets every partition (12 s after the restart). So the first
/// bridge is killed between two heartbeats ([`kill_between_heartbeats`]).
///
/// The restarted bridge must not idle silently: it warns with what to check, and `/metrics` says
/// `insights_bridge_idle_with_backlog 1`. Its report of an assignment of 0 partitions is the sign
/// that the broker has dropped the dead member (the SyncGroup that settled the group was the one
/// that dropped it), so, as the warning says, it is restarted then (SIGTERM: it leaves the
/// group), and the next bridge, alone in the group, writes every payload exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn regression_tansu_restart_inside_the_dead_members_session_idles_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = tansu("insights");
    let (_influx, influx) = influxd(dir.path());
    create_database(&influx).await;
    let metrics_port = free_port();
    let config = dir.path().join("bridge.toml");
    // Checks every 300 ms (30 s by default) so that the warning comes within a second.
    write_config(
        &config,
        &brokers,
        &influx,
        "sigkill-dynamic",
        metrics_port,
        "idle_check_interval_ms = 300",
    );
    let first = start(&config);
    let assigned = wait_for_metric(metrics_port, "insights_bridge_assigned_partitions", 3.0).await;
    kill_between_heartbeats(first, assigned).await;
    let log = dir.path().join("bridge.log");
    let mut idle = start_logging(&config, std::fs::File::create(&log).unwrap());
    // Produced only now, so that nothing but the restarted bridge could have consumed them.
    produce(&brokers, &payloads(N)).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = metrics(metrics_port).await;
        let held = metric(&page, "insights_bridge_assigned_partitions");
        assert!(
            held.is_none_or(|h| h == 0.0),
            "the restarted bridge got partitions: tansu no longer has the bug this test pins, \
             or the first bridge was killed too late in its heartbeat cycle:\n{page}"
        );
        if held == Some(0.0) && metric(&page, "insights_bridge_idle_with_backlog") == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no idle_with_backlog 1 with 0 partitions in /metrics:\n{page}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_log(
        &mut idle,
        &log,
        "this bridge holds no partition while its topic has messages its group has not committed",
    )
    .await;
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("backlog=400"), "{logged}");
    assert_eq!(
        count(&influx, POINTS).await,
        0,
        "nothing written while idle"
    );

    // SIGTERM: the idle bridge leaves the group, so the next one joins an empty group.
    let stopped = Command::new("kill")
        .args(["-TERM", &idle.0.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let status = idle.0.wait().unwrap();
    assert!(
        status.success(),
        "the idle bridge stopped cleanly: {status}"
    );
    let _bridge = start(&config);
    every_payload_exactly_once(&influx, "after the second restart").await;
    let page = metrics(metrics_port).await;
    assert_eq!(
        metric(&page, "insights_bridge_idle_with_backlog"),
        Some(0.0),
        "{page}"
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
    const N: u64 = 50;
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
