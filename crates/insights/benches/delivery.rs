//! Delivery benchmark (run it with `scripts/bench-delivery`), against tansu with memory storage:
//!
//! 1. throughput of the whole delivery path — hand-off → dispatcher (encode) → spool (append)
//!    → producer → broker acknowledgement — versus a bare rdkafka producer sending the same
//!    messages to the same broker with the same producer settings; rounds interleaved;
//! 2. the Datadog path — hand-off → dispatcher → Datadog spool → v2 series bodies (zstd) →
//!    POST → 202 — versus a bare reqwest client posting the same bodies (captured from the
//!    Datadog path in an untimed first pass) to the same local stand-in intake, with the same
//!    number of requests in flight; rounds interleaved;
//! 3. Kafka's throughput (part 1's path) with the Datadog sink beside it versus without;
//! 4. the resident memory of the `insights` server during a broker outage under steady load.
//!
//! The stand-in intake (in this process, on loopback) decodes each body (zstd) and answers 202;
//! no real Datadog is reachable from here.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use insights::background::{DATADOG_MAX_LAG, Lane, follow};
use insights_delivery::datadog::DatadogRequest;
use insights_delivery::{
    DatadogConfig, DatadogDelivery, Dispatcher, DispatcherConfig, Handoff, KafkaConfig,
    KafkaDelivery, PayloadSink,
};
use insights_kafka::ConnectionRequest;
use insights_payload::{AlgorithmRef, MetricSet, MetricValue, Payload, RequestId, SessionId};
use insights_testkit::{Proc, free_port};
use rdkafka::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tokio_util::sync::CancellationToken;

struct Args {
    payloads: usize,
    rounds: usize,
    outage_seconds: u64,
    rate: u64,
    /// Payloads per round of parts 2 and 3 (0 skips them).
    datadog_payloads: usize,
    /// Skip part 1 (and so run parts 2 and 3 alone).
    skip_kafka: bool,
}

fn args() -> Args {
    let mut a = Args {
        payloads: 200_000,
        rounds: 3,
        outage_seconds: 60,
        rate: 500,
        datadog_payloads: 100_000,
        skip_kafka: false,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let v: u64 = pair.get(1).and_then(|v| v.parse().ok()).expect("usage: bench_delivery [--payloads N] [--rounds N] [--outage-seconds N] [--rate CALLS_PER_S] [--datadog-payloads N] [--skip-kafka 0|1]");
        match pair[0].as_str() {
            "--payloads" => a.payloads = v as usize,
            "--rounds" => a.rounds = v as usize,
            "--outage-seconds" => a.outage_seconds = v,
            "--rate" => a.rate = v,
            "--datadog-payloads" => a.datadog_payloads = v as usize,
            "--skip-kafka" => a.skip_kafka = v != 0,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

const TOPICS: [&str; 3] = ["bench-bare", "bench-pipeline", "bench-outage"];

/// tansu on `port`: memory storage, or SQLite in `dir` (which survives a restart).
fn start_tansu(port: u16, sqlite_dir: Option<&std::path::Path>) -> Proc {
    match sqlite_dir {
        Some(dir) => insights_testkit::tansu_sqlite_on(port, dir, &TOPICS),
        None => {
            let (p, brokers) = insights_testkit::tansu_on(port, TOPICS[0]);
            for topic in &TOPICS[1..] {
                insights_testkit::create_topic(&brokers, topic, 3);
            }
            p
        }
    }
}

fn payload(i: usize) -> Payload {
    let mut metrics = MetricSet::new();
    metrics
        .insert(
            "risk_score",
            MetricValue::from(serde_json::Number::from_f64((i % 1000) as f64 / 1000.0).unwrap()),
        )
        .unwrap();
    metrics
        .insert("approved", MetricValue::from((i % 2) as i64))
        .unwrap();
    metrics
        .insert("credit_limit", MetricValue::from((i % 9000) as i64))
        .unwrap();
    Payload {
        algorithm: AlgorithmRef {
            owner: "bench".into(),
            name: format!("algo_{}", i % 8),
            version: "1.0.0".into(),
        },
        session_id: SessionId::new(),
        request_id: RequestId::new(),
        duration_milliseconds: (i % 50) as u64,
        time: time::OffsetDateTime::now_utc(),
        metrics,
        status: None,
        failed: false,
    }
}

/// The producer settings of the delivery thread, for the bare baseline.
fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "1048576");
    c
}

fn bare(brokers: &str, messages: &[(String, String)]) -> f64 {
    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_config(brokers).create().unwrap();
    let start = Instant::now();
    for (key, value) in messages {
        let mut record = BaseRecord::to("bench-bare")
            .key(key.as_str())
            .payload(value.as_str());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    record = r;
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err((e, _)) => panic!("{e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();
    messages.len() as f64 / start.elapsed().as_secs_f64()
}

async fn pipeline(brokers: &str, payloads: Vec<Payload>, spool: &std::path::Path) -> f64 {
    pipeline_beside(brokers, payloads, spool, None).await
}

/// Part 1's path; with `datadog` (a URL and whether an intake answers there), the Datadog sink
/// is given every payload too, as in a server sending to both. The rate is Kafka's; the Datadog
/// sink is then checked to have delivered everything (intake up) or spooled everything (down).
#[path = "threads.rs"]
#[allow(dead_code)] // the runtime bench's helper; this bench uses a part of it
mod threads;

async fn pipeline_beside(
    brokers: &str,
    payloads: Vec<Payload>,
    spool: &std::path::Path,
    datadog: Option<(&str, Intake)>,
) -> f64 {
    let n = payloads.len() as u64;
    let _ = std::fs::remove_dir_all(spool);
    let dd_spool = spool.with_extension("datadog");
    let _ = std::fs::remove_dir_all(&dd_spool);
    let dd = datadog.map(|(url, intake)| {
        // As the server runs it: below Kafka's priority (here the bench's, nice 0), under
        // SCHED_IDLE while its own queue keeps up and Datadog lags less than a minute.
        let lane = Lane::datadog(0, true);
        let d = Arc::new(
            DatadogDelivery::start(DatadogConfig {
                threads: lane.hooks(),
                ..DatadogConfig::new(dd_spool.clone())
            })
            .unwrap(),
        );
        d.configure(Some(datadog_settings(url)));
        let lane = lane.with_lag(d.lag(), DATADOG_MAX_LAG);
        (d, intake, lane)
    });
    let kafka = Arc::new(KafkaDelivery::start(KafkaConfig::new(spool.to_path_buf())).unwrap());
    let (settings, _) = ConnectionRequest {
        topic: "bench-pipeline".into(),
        brokers: brokers.into(),
        connection_type: "plaintext".into(),
        ..Default::default()
    }
    .validate(None)
    .unwrap();
    kafka.connect(Some(settings));
    let (handoff, rx) = Handoff::channel(payloads.len());
    let shutdown = CancellationToken::new();
    let mut sinks: Vec<Arc<dyn PayloadSink>> = vec![kafka.clone()];
    if let Some((d, _, _)) = &dd {
        sinks.push(d.clone());
    }
    // Datadog's lane follows its own queue, as in the server.
    let _follower = dd
        .as_ref()
        .map(|(d, _, lane)| follow(d.lane_backlog(), vec![lane.clone()]));
    let dispatcher =
        tokio::spawn(Dispatcher::new(rx, sinks, DispatcherConfig::default()).run(shutdown.clone()));
    let start = Instant::now();
    let cpu_before = threads::ThreadUse::now();
    // Whether the Datadog lane is raised (out of SCHED_IDLE), sampled every millisecond.
    let raised = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let sampler = dd.as_ref().map(|(_, _, lane)| {
        let (lane, raised) = (lane.clone(), raised.clone());
        tokio::spawn(async move {
            loop {
                raised[0].fetch_add(u64::from(!lane.is_idle()), Ordering::Relaxed);
                raised[1].fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    });
    for p in payloads {
        handoff.offer(p);
        tokio::task::yield_now().await;
    }
    while kafka.status().delivered < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    // Where the round's CPU went, by thread group (the broker is another process).
    let used = threads::ThreadUse::now().since(&cpu_before);
    let mut line = format!(
        "    Datadog {}: {rate:.0}/s; CPU ms by thread:",
        if dd.is_some() { "on " } else { "off" }
    );
    for (group, cpu_ns, _) in used.groups().filter(|g| g.1 >= 5_000_000) {
        line += &format!(" {group} {}", cpu_ns / 1_000_000);
    }
    if let Some(s) = sampler {
        s.abort();
        line += &format!(
            "; its lane raised in {} of {} samples",
            raised[0].load(Ordering::Relaxed),
            raised[1].load(Ordering::Relaxed)
        );
    }
    eprintln!("{line}");
    let status = kafka.status();
    assert_eq!((status.dropped, status.waiting), (0, 0));
    if let Some((d, Intake::Up, _)) = &dd {
        while d.status().delivered < n {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(d.status().dropped, 0);
    }
    shutdown.cancel();
    dispatcher.await.unwrap();
    kafka.stop().await;
    if let Some((d, intake, _)) = dd {
        if intake == Intake::Down {
            // The last append's status is published just after its answer.
            let deadline = Instant::now() + Duration::from_secs(5);
            while d.status().waiting < n && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let s = d.status();
            assert_eq!(
                (s.waiting, s.delivered, s.dropped),
                (n, 0, 0),
                "all spooled, none lost"
            );
        }
        d.stop().await;
    }
    rate
}

const DD_KEY: &str = "0123456789abcdef0123456789abcdef";

fn datadog_settings(url: &str) -> insights_delivery::DatadogSettings {
    serde_json::from_value::<DatadogRequest>(serde_json::json!({
        "site": "datadoghq.com", "api_key": DD_KEY, "url": url, "tags": ["env:bench"],
    }))
    .unwrap()
    .validate(None)
    .unwrap()
}

/// Bodies the stand-in kept, with the payloads in each.
type Captured = Arc<std::sync::Mutex<Option<Vec<(axum::body::Bytes, usize)>>>>;

/// The stand-in intake: decodes each body and answers 202; keeps the bodies while capturing.
struct StandIn {
    url: String,
    capture: Captured,
}

async fn stand_in() -> StandIn {
    use axum::routing::post;
    let capture: Captured = Arc::new(std::sync::Mutex::new(None));
    let c = capture.clone();
    let app = axum::Router::new().route(
        "/api/v2/series",
        post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let c = c.clone();
                async move {
                    assert_eq!(headers["dd-api-key"], DD_KEY);
                    let json = zstd::bulk::decompress(&body, 6 << 20).expect("a zstd body");
                    if let Some(v) = c.lock().unwrap().as_mut() {
                        // Payloads in it: one `duration_milliseconds` point each.
                        let doc: serde_json::Value = serde_json::from_slice(&json).unwrap();
                        let n: usize = doc["series"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .filter(|s| s["metric"] == "algorithmia.duration_milliseconds")
                            .map(|s| s["points"].as_array().unwrap().len())
                            .sum();
                        v.push((body, n));
                    }
                    (axum::http::StatusCode::ACCEPTED, r#"{"errors":[]}"#)
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    StandIn { url, capture }
}

/// The Datadog path: payloads/s from the first offer until the intake accepted the last.
async fn datadog_pipeline(url: &str, payloads: Vec<Payload>, spool: &std::path::Path) -> f64 {
    let n = payloads.len() as u64;
    let _ = std::fs::remove_dir_all(spool);
    let dd = Arc::new(DatadogDelivery::start(DatadogConfig::new(spool.to_path_buf())).unwrap());
    dd.configure(Some(datadog_settings(url)));
    let (handoff, rx) = Handoff::channel(payloads.len());
    let shutdown = CancellationToken::new();
    let sinks: Vec<Arc<dyn PayloadSink>> = vec![dd.clone()];
    let dispatcher =
        tokio::spawn(Dispatcher::new(rx, sinks, DispatcherConfig::default()).run(shutdown.clone()));
    let start = Instant::now();
    for p in payloads {
        handoff.offer(p);
        tokio::task::yield_now().await;
    }
    while dd.status().delivered < n {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let status = dd.status();
    assert_eq!((status.dropped, status.waiting), (0, 0));
    shutdown.cancel();
    dispatcher.await.unwrap();
    dd.stop().await;
    rate
}

/// Posts one compressed v2 series body as the sink does, and reads the 202.
async fn post_series(client: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>) {
    let r = client
        .post(url)
        .header("DD-API-KEY", DD_KEY)
        .header("Content-Type", "application/json")
        .header("Content-Encoding", "zstd1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let _ = r.bytes().await;
}

/// A bare reqwest client posting the same bodies, as many in flight as the sink keeps (4).
async fn datadog_bare(url: &str, bodies: &[(axum::body::Bytes, usize)]) -> f64 {
    let client = reqwest::Client::new();
    let url = format!("{url}/api/v2/series");
    let n: usize = bodies.iter().map(|b| b.1).sum();
    let queue = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        bodies.to_vec(),
    )));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..DatadogConfig::new("x".into()).concurrency {
        let (client, url, queue) = (client.clone(), url.clone(), queue.clone());
        tasks.spawn(async move {
            loop {
                let Some((body, _)) = queue.lock().unwrap().pop_front() else {
                    return;
                };
                post_series(&client, &url, body).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    n as f64 / start.elapsed().as_secs_f64()
}

/// A bare forwarder: the least work any client must do to send these payloads to Datadog, as
/// the published forwarder does from the Kafka topic. It parses each payload's JSON, builds v2
/// series (one per metric and algorithm version, typed serde), compresses with zstd at level 1
/// and posts, with one task encoding and as many requests in flight as the sink keeps (4): the
/// Datadog path minus the spool, the dispatcher and the bookkeeping of what was delivered.
///
/// `json_of(i)` is payload `i`'s JSON: read ready-made (as from the topic), or encoded from the
/// same `Payload` values the Datadog path is given, as the dispatcher encodes them.
async fn datadog_forwarder<'a>(
    url: &str,
    n: usize,
    json_of: impl Fn(usize) -> std::borrow::Cow<'a, str>,
) -> f64 {
    use insights_payload::keys;
    #[derive(serde::Serialize)]
    struct Point {
        timestamp: i64,
        value: f64,
    }
    #[derive(serde::Serialize)]
    struct Series {
        metric: String,
        r#type: u8,
        points: Vec<Point>,
        tags: Tags,
    }
    /// Shared by the series of one algorithm version (serde has no `Arc` without its `rc`).
    struct Tags(Arc<[String]>);
    impl serde::Serialize for Tags {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            self.0.as_ref().serialize(s)
        }
    }
    #[derive(serde::Serialize)]
    struct Body {
        series: Vec<Series>,
    }
    /// Payloads per request: about what the sink puts in one (3,900 of these).
    const PER_REQUEST: usize = 4096;
    let client = reqwest::Client::new();
    let url = format!("{url}/api/v2/series");
    let start = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    let all: Vec<usize> = (0..n).collect();
    for chunk in all.chunks(PER_REQUEST) {
        let mut index: std::collections::HashMap<(String, Arc<[String]>), usize> =
            std::collections::HashMap::new();
        let mut series: Vec<Series> = Vec::new();
        let mut tags_of: std::collections::HashMap<String, Arc<[String]>> =
            std::collections::HashMap::new();
        for &i in chunk {
            let json = json_of(i);
            let doc: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&json).unwrap();
            let s = |k: &str| doc[k].as_str().unwrap();
            // Algorithmia's `time` has no offset (UTC, microseconds).
            let (timestamp, _) = insights_payload::parse_time(s(keys::TIME)).unwrap();
            let version = format!(
                "{}/{}/{}",
                s(keys::ALGORITHM_OWNER),
                s(keys::ALGORITHM_NAME),
                s(keys::ALGORITHM_VERSION)
            );
            let tags = tags_of
                .entry(version)
                .or_insert_with(|| {
                    Arc::from(vec![
                        format!("algorithm_name:{}", s(keys::ALGORITHM_NAME)),
                        format!("algorithm_owner:{}", s(keys::ALGORITHM_OWNER)),
                        format!("algorithm_version:{}", s(keys::ALGORITHM_VERSION)),
                        "env:bench".to_string(),
                    ])
                })
                .clone();
            for (key, value) in &doc {
                let Some(value) = value.as_f64() else {
                    continue;
                };
                if keys::OPERATIONAL.contains(&key.as_str()) && key != keys::DURATION_MILLISECONDS {
                    continue;
                }
                let metric = format!("algorithmia.{key}");
                let point = Point { timestamp, value };
                match index.get(&(metric.clone(), tags.clone())) {
                    Some(&i) => series[i].points.push(point),
                    None => {
                        index.insert((metric.clone(), tags.clone()), series.len());
                        series.push(Series {
                            metric,
                            r#type: 3,
                            points: vec![point],
                            tags: Tags(tags.clone()),
                        });
                    }
                }
            }
        }
        let body = zstd::bulk::compress(&serde_json::to_vec(&Body { series }).unwrap(), 1).unwrap();
        while in_flight.len() >= DatadogConfig::new("x".into()).concurrency {
            in_flight.join_next().await;
        }
        let (client, url) = (client.clone(), url.clone());
        in_flight.spawn(async move { post_series(&client, &url, body).await });
    }
    while in_flight.join_next().await.is_some() {}
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn min_max(v: &[f64]) -> String {
    let min = v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{min:.0}–{max:.0}")
}

/// Parts 2 and 3.
async fn datadog_parts(a: &Args, brokers: &str, dir: &std::path::Path) {
    let intake = stand_in().await;
    let n = a.datadog_payloads;
    // Untimed first pass: captures the bodies the bare client posts (and warms up).
    *intake.capture.lock().unwrap() = Some(Vec::new());
    datadog_pipeline(
        &intake.url,
        (0..n).map(payload).collect(),
        &dir.join("dd-capture"),
    )
    .await;
    let bodies = intake.capture.lock().unwrap().take().unwrap();
    let carried: usize = bodies.iter().map(|b| b.1).sum();
    assert_eq!(carried, n, "the captured bodies carry every payload once");
    let mean_body = bodies.iter().map(|b| b.0.len()).sum::<usize>() / bodies.len();
    // What the forwarder reads: the payloads' JSON, as on the Kafka topic (made untimed).
    let jsons: Vec<String> = (0..n).map(|i| payload(i).to_json()).collect();
    let (mut bare, mut fwd, mut enc, mut path) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let from_topic = |i: usize| std::borrow::Cow::Borrowed(jsons[i].as_str());
    for round in 0..a.rounds {
        let spool = dir.join(format!("dd-spool-{round}"));
        let payloads: Vec<Payload> = (0..n).map(payload).collect();
        let values = payloads.clone();
        let encoding = |i: usize| std::borrow::Cow::Owned(values[i].to_json());
        // The four sides in turn, the order reversed every other round.
        let (b, f, e, p) = if round % 2 == 0 {
            let b = datadog_bare(&intake.url, &bodies).await;
            let f = datadog_forwarder(&intake.url, n, from_topic).await;
            let e = datadog_forwarder(&intake.url, n, encoding).await;
            (
                b,
                f,
                e,
                datadog_pipeline(&intake.url, payloads, &spool).await,
            )
        } else {
            let p = datadog_pipeline(&intake.url, payloads, &spool).await;
            let e = datadog_forwarder(&intake.url, n, encoding).await;
            let f = datadog_forwarder(&intake.url, n, from_topic).await;
            (datadog_bare(&intake.url, &bodies).await, f, e, p)
        };
        eprintln!(
            "datadog round {}: bare {b:.0}/s, forwarder {f:.0}/s, encoding forwarder {e:.0}/s, path {p:.0}/s, path/forwarder {:.3}, path/encoding forwarder {:.3}",
            round + 1,
            p / f,
            p / e
        );
        bare.push(b);
        fwd.push(f);
        enc.push(e);
        path.push(p);
    }
    println!(
        "\nDatadog: payloads per round: {n}, requests per round: {}, mean compressed body: {mean_body} bytes, rounds: {}\n",
        bodies.len(),
        a.rounds
    );
    let ratio =
        |x: &[f64], y: &[f64]| -> Vec<f64> { x.iter().zip(y).map(|(a, b)| a / b).collect() };
    let spread = |v: &[f64]| format!("{:.0} | {} |", median(&mut v.to_vec()), min_max(v));
    let ratio_spread = |v: Vec<f64>| {
        format!(
            "{:.3} | {:.3}–{:.3} |",
            median(&mut v.clone()),
            v.iter().copied().fold(f64::INFINITY, f64::min),
            v.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        )
    };
    println!("| path | payloads/s, median | min–max |");
    println!("| --- | ---: | ---: |");
    println!(
        "| bare reqwest client, the same bodies pre-encoded, 4 in flight | {}",
        spread(&bare)
    );
    println!(
        "| bare forwarder: payload JSON → v2 series (serde) → zstd → POST, 4 in flight | {}",
        spread(&fwd)
    );
    println!(
        "| the same forwarder, encoding each payload's JSON from the values the path is given | {}",
        spread(&enc)
    );
    println!(
        "| hand-off → Datadog spool → series (zstd) → POST → 202 | {}",
        spread(&path)
    );
    println!(
        "| ratio to the forwarder given the same values, paired rounds (goal ≥ 0.8) | {}",
        ratio_spread(ratio(&path, &enc))
    );
    println!(
        "| ratio to the forwarder given ready JSON, paired rounds | {}",
        ratio_spread(ratio(&path, &fwd))
    );
    println!(
        "| ratio to the pre-encoded bodies, paired rounds | {}",
        ratio_spread(ratio(&path, &bare))
    );

    // 3. Kafka with the Datadog sink beside it, versus without.
    kafka_beside_datadog(a, brokers, dir, &intake.url, Intake::Up).await;

    // 3b. The same with the intake down (nothing listening): the Datadog sink spools every
    // payload and retries with backoff, and Kafka must not wait for it.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    kafka_beside_datadog(a, brokers, dir, &format!("http://{down}"), Intake::Down).await;
}

/// Whether the Datadog stand-in answers (`Up`) or nothing listens at its address (`Down`).
#[derive(Clone, Copy, PartialEq)]
enum Intake {
    Up,
    Down,
}

/// Kafka's rate with a Datadog sink beside it (sending to `url`) against without, in paired
/// rounds whose order alternates; prints the table.
async fn kafka_beside_datadog(
    a: &Args,
    brokers: &str,
    dir: &std::path::Path,
    url: &str,
    intake: Intake,
) {
    let n = a.datadog_payloads;
    let (what, row, goal) = match intake {
        Intake::Up => (
            "Kafka with Datadog on vs off",
            "Datadog on (same payloads to the stand-in)",
            " (goal ≥ 0.95)",
        ),
        Intake::Down => (
            "Kafka with the Datadog intake down vs no Datadog sink",
            "Datadog on, intake down (spooling, retrying)",
            "",
        ),
    };
    let (mut off, mut on, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let spool = dir.join(format!(
            "{}-spool-{round}",
            if intake == Intake::Up { "kdd" } else { "kdown" }
        ));
        let run = |with: bool| {
            let payloads: Vec<Payload> = (0..n).map(payload).collect();
            let spool = spool.clone();
            async move {
                pipeline_beside(brokers, payloads, &spool, with.then_some((url, intake))).await
            }
        };
        let (k_off, k_on) = if round % 2 == 0 {
            let off = run(false).await;
            (off, run(true).await)
        } else {
            let on = run(true).await;
            (run(false).await, on)
        };
        eprintln!(
            "{what}, round {}: off {k_off:.0}/s, on {k_on:.0}/s, ratio {:.3}",
            round + 1,
            k_on / k_off
        );
        off.push(k_off);
        on.push(k_on);
        ratios.push(k_on / k_off);
    }
    println!("\n{what}: payloads per round: {n}, rounds: {}\n", a.rounds);
    println!("| Kafka path | payloads/s, median | min–max |");
    println!("| --- | ---: | ---: |");
    println!(
        "| Datadog off | {:.0} | {} |",
        median(&mut off.clone()),
        min_max(&off)
    );
    println!(
        "| {row} | {:.0} | {} |",
        median(&mut on.clone()),
        min_max(&on)
    );
    println!(
        "| ratio on/off, median of the paired rounds{goal} | {:.3} | {:.3}–{:.3} |",
        median(&mut ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let brokers = format!("127.0.0.1:{port}");
    let tansu = start_tansu(port, None);

    if a.skip_kafka {
        if a.datadog_payloads > 0 {
            datadog_parts(&a, &brokers, dir.path()).await;
        }
        return;
    }
    // 1. Throughput.
    let messages: Vec<(String, String)> = (0..a.payloads)
        .map(|i| {
            let p = payload(i);
            (p.algorithm.path(), p.to_json())
        })
        .collect();
    let mean_bytes = messages.iter().map(|(_, v)| v.len()).sum::<usize>() / messages.len();
    let mut bare_rates = Vec::new();
    let mut pipeline_rates = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..a.rounds {
        // Paired rounds in alternating order, so that a broker slowing down as its in-memory
        // log grows does not always fall on the same side.
        let bare_round = || {
            let (b, m) = (brokers.clone(), messages.clone());
            tokio::task::spawn_blocking(move || bare(&b, &m))
        };
        let payloads: Vec<Payload> = (0..a.payloads).map(payload).collect();
        let spool = dir.path().join(format!("spool-{round}"));
        let (bare_rate, pipeline_rate) = if round % 2 == 0 {
            let b = bare_round().await.unwrap();
            (b, pipeline(&brokers, payloads, &spool).await)
        } else {
            let p = pipeline(&brokers, payloads, &spool).await;
            (bare_round().await.unwrap(), p)
        };
        bare_rates.push(bare_rate);
        pipeline_rates.push(pipeline_rate);
        ratios.push(pipeline_rate / bare_rate);
        eprintln!(
            "round {}: bare {bare_rate:.0}/s, pipeline {pipeline_rate:.0}/s, ratio {:.3}",
            round + 1,
            pipeline_rate / bare_rate
        );
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rounds: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    let (b, p, r) = (
        median(&mut bare_rates),
        median(&mut pipeline_rates),
        median(&mut ratios),
    );
    println!(
        "payloads per round: {}, mean payload: {mean_bytes} bytes, rounds: {} (medians shown; ratios per round: {})\n",
        a.payloads,
        a.rounds,
        rounds.join(", ")
    );
    println!("| path | payloads/s |");
    println!("| --- | ---: |");
    println!("| bare rdkafka producer (same settings) | {b:.0} |");
    println!("| hand-off → spool → producer → ack | {p:.0} |");
    println!("| ratio, median of the paired rounds (goal ≥ 0.8) | {r:.3} |");
    if a.datadog_payloads > 0 {
        datadog_parts(&a, &brokers, dir.path()).await;
    }

    if a.outage_seconds == 0 {
        return;
    }
    drop(tansu);

    // 2. Memory of the server during an outage under steady load (a broker with SQLite
    //    storage, so that the restarted broker still has the topic and its producer state).
    let outage_port = free_port();
    let outage_dir = dir.path().join("tansu");
    std::fs::create_dir_all(&outage_dir).unwrap();
    let brokers = format!("127.0.0.1:{outage_port}");
    let mut tansu = start_tansu(outage_port, Some(&outage_dir));
    let exe = std::env::current_exe().unwrap();
    let release = exe.parent().unwrap().parent().unwrap();
    let binary = release.join("insights");
    let echo = exe.parent().unwrap().join("echo_worker");
    assert!(
        binary.exists() && echo.exists(),
        "scripts/bench-delivery builds both"
    );
    let data = dir.path().join("server");
    let mut server = Proc(
        Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("INSIGHTS_ADMIN_TOKEN", "bench")
            .env("RUST_LOG", "warn,insights::serve=info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(server.0.stderr.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(addr) = line.split("serving addr=").nth(1) {
            break format!("http://{}", addr.split_whitespace().next().unwrap());
        }
    };
    let log_path = dir.path().join("server.log");
    let log_copy = log_path.clone();
    std::thread::spawn(move || {
        use std::io::Write;
        let mut f = std::fs::File::create(log_copy).unwrap();
        for line in lines.map_while(Result::ok) {
            let _ = writeln!(f, "{line}");
        }
    });
    let pid = server.0.id();
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{url}{path}"))
            .bearer_auth("bench")
            .json(&body)
            .send()
    };
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    post(
        "/v1/algorithms/bench",
        serde_json::json!({"name": "echo", "source": {"path": src, "command": [echo]}}),
    )
    .await
    .unwrap();
    post(
        "/v1/algorithms/bench/echo/versions",
        serde_json::json!({"settings": {"insights_enabled": true}}),
    )
    .await
    .unwrap();
    let key: serde_json::Value = post("/v1/admin/api-keys", serde_json::json!({"name": "b"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    http.put(format!("{url}/v1/admin/insights/connection"))
        .bearer_auth("bench")
        .json(&serde_json::json!({"topic": "bench-outage", "brokers": brokers, "connection_type": "plaintext"}))
        .send()
        .await
        .unwrap();
    let load_stop = CancellationToken::new();
    let load = {
        let (http, url, key, stop) = (http.clone(), url.clone(), key.clone(), load_stop.clone());
        let every = Duration::from_micros(1_000_000 / a.rate.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut n = 0u64;
            while !stop.is_cancelled() {
                tick.tick().await;
                let _ = http
                    .post(format!("{url}/v1/algo/bench/echo"))
                    .header("Authorization", format!("Simple {key}"))
                    .json(&serde_json::json!({"n": n}))
                    .send()
                    .await;
                n += 1;
            }
            n
        })
    };
    let sample = |label: &str, seconds: u64| {
        let label = label.to_string();
        async move {
            let mut v = Vec::new();
            for _ in 0..seconds {
                tokio::time::sleep(Duration::from_secs(1)).await;
                v.push(rss_kib(pid));
            }
            (label, v)
        }
    };
    let before = sample("before the outage (10 s)", 10).await;
    drop(tansu); // the broker goes away
    let during = sample(
        &format!("during the outage ({} s)", a.outage_seconds),
        a.outage_seconds,
    )
    .await;
    tansu = start_tansu(outage_port, Some(&outage_dir));
    let after = sample("after the broker returned (20 s)", 20).await;
    load_stop.cancel();
    let calls = load.await.unwrap();
    // How long until everything waiting is delivered (2 minutes at most).
    let drain_start = Instant::now();
    loop {
        let s: serde_json::Value = http
            .get(format!("{url}/v1/admin/insights/connection"))
            .bearer_auth("bench")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"]["waiting"] == 0 || drain_start.elapsed() > Duration::from_secs(120) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drained_after = drain_start.elapsed();
    let status: serde_json::Value = http
        .get(format!("{url}/v1/admin/insights/connection"))
        .bearer_auth("bench")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    println!(
        "\nserver RSS under {} calls/s (Insights on, {calls} calls in all):\n",
        a.rate
    );
    println!("| phase | min MiB | max MiB | last MiB |");
    println!("| --- | ---: | ---: | ---: |");
    for (label, v) in [before, during, after] {
        let mib = |k: u64| k as f64 / 1024.0;
        println!(
            "| {label} | {:.1} | {:.1} | {:.1} |",
            mib(*v.iter().min().unwrap()),
            mib(*v.iter().max().unwrap()),
            mib(*v.last().unwrap())
        );
    }
    println!(
        "\nKafka status at the end: delivered {}, dropped {}, waiting {} ({:.1} s after the load stopped)",
        status["status"]["delivered"],
        status["status"]["dropped"],
        status["status"]["waiting"],
        drained_after.as_secs_f64()
    );
    drop(server);
    drop(tansu);
    if let Ok(log) = std::fs::read_to_string(&log_path) {
        let errors: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .collect();
        eprintln!("server warnings and errors ({}), last 5:", errors.len());
        for l in errors.iter().rev().take(5) {
            eprintln!("  {l}");
        }
    }
}
