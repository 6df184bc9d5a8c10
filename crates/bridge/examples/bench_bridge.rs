//! Bridge benchmark (run it with `scripts/bench-bridge`), in one run on the same topic:
//! (a) a bare rdkafka consumer that only reads the messages, (b) `influxd` ingesting the same
//! points posted directly as pre-encoded line protocol, (c) the bridge end to end. The conversion
//! alone is a criterion benchmark (benches/conversion.rs), which `scripts/bench-bridge` runs too.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use insights_bridge::{BridgeConfig, BridgeStats, Mapping};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio_util::sync::CancellationToken;

#[path = "../benches/sample/mod.rs"]
mod sample;
use sample::payload;

async fn query(url: &str, q: &str) {
    reqwest::Client::new()
        .post(format!("{url}/query"))
        .query(&[("q", q)])
        .send()
        .await
        .unwrap();
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let (_kafka, brokers) = insights_testkit::tansu("insights");
    let (_influx, influx) = insights_testkit::influxd(dir.path());
    query(&influx, "CREATE DATABASE direct").await;
    query(&influx, "CREATE DATABASE bridge").await;
    let messages: Vec<String> = (0..n).map(payload).collect();
    let mean = messages.iter().map(String::len).sum::<usize>() / n;

    // Produce once (not measured).
    {
        use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("linger.ms", "5")
            .set("queue.buffering.max.messages", "1000000")
            .create()
            .unwrap();
        for m in &messages {
            while let Err((e, _)) =
                p.send(BaseRecord::<str, str>::to("insights").key("k").payload(m))
            {
                assert_eq!(
                    e.rdkafka_error_code(),
                    Some(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    "{e}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        p.flush(Duration::from_secs(120)).unwrap();
    }

    // The points for (b), pre-encoded. The conversion alone is measured by criterion:
    // `cargo bench -p insights-bridge --bench conversion` (benches/conversion.rs).
    let mapping = Mapping::default();
    let mut lines = Vec::with_capacity(64 << 20);
    for m in &messages {
        mapping.encode(m.as_bytes(), &mut lines).unwrap();
    }

    // (a) bare consumer.
    let b = brokers.clone();
    let consume = tokio::task::spawn_blocking(move || {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "bench-bare")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .create()
            .unwrap();
        c.subscribe(&["insights"]).unwrap();
        let mut got = 0;
        let mut start = None;
        while got < n {
            if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                start.get_or_insert_with(Instant::now);
                got += 1;
            }
        }
        n as f64 / start.unwrap().elapsed().as_secs_f64()
    })
    .await
    .unwrap();

    // (b) influxd ingesting the pre-encoded points directly, 5000 per request, one connection.
    let http = reqwest::Client::new();
    let text = String::from_utf8(lines).unwrap();
    let all: Vec<&str> = text.lines().collect();
    let start = Instant::now();
    for chunk in all.chunks(5000) {
        let r = http
            .post(format!("{influx}/write"))
            .query(&[("db", "direct"), ("precision", "ns")])
            .body(chunk.join("\n"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let direct = n as f64 / start.elapsed().as_secs_f64();

    // (c) the bridge, end to end.
    let config = BridgeConfig::parse(
        &format!(
            "[kafka]\nbrokers = \"{brokers}\"\ntopic = \"insights\"\ngroup = \"bench-bridge\"\n\
             [influxdb]\napi = \"v1\"\nurl = \"{influx}\"\ndatabase = \"bridge\"\n[batch]\nmax_points = 5000\nmax_wait_ms = 200\n"
        ),
        dir.path(),
    )
    .unwrap();
    let stats = Arc::new(BridgeStats::default());
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(insights_bridge::run_with_stats(
        config,
        shutdown.clone(),
        stats.clone(),
    ));
    while stats.consumed.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let start = Instant::now();
    while stats.points_written.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let bridge = n as f64 / start.elapsed().as_secs_f64();
    shutdown.cancel();
    task.await.unwrap().unwrap();

    println!("payloads: {n}, mean size {mean} bytes\n");
    println!("| path | payloads/s |");
    println!("| --- | ---: |");
    println!("| (a) bare rdkafka consumer, reading only | {consume:.0} |");
    println!("| (b) influxd ingesting pre-encoded lines (5000/request) | {direct:.0} |");
    println!("| (c) the bridge end to end | {bridge:.0} |");
    println!(
        "| (c) / min(a, b) (goal ≥ 0.8) | {:.3} |",
        bridge / consume.min(direct)
    );
}
