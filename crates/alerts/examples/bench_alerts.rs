//! `scripts/bench-alerts`: 1,000 checks over 100 series, evaluated every 10 s by the real
//! scheduler, on a real series store fed one payload per series per second, notifying a
//! local HTTP receiver through the real outbox.
//!
//! Reports, per round: the CPU the process spent beyond the feeder alone (the feeder's own cost
//! measured first, in the same run), the evaluation time, and the worst evaluation lag (how
//! late a run started after its time); and, from a payload that crosses a threshold to the
//! receiver getting the message, p50 and p99 against the check's `every`.
//!
//! Usage: bench_alerts [--rounds N] [--crossings N]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use insights_alerts::{Alerts, AlertsConfig, Catalog, ExpectedSeries};
use insights_series::{AlgorithmPath, Clock, SeriesConfig, SeriesStore};
use insights_store::SecretBox;
use serde_json::{Value, json};

const ALGORITHMS: usize = 10;
const VERSIONS: usize = 10;
const CHECKS_PER_ALGORITHM: usize = 100;
const EVERY_S: u64 = 10;

struct Published(Vec<ExpectedSeries>);

/// The series to send one high value for next, and when it was sent.
type Spike = Arc<Mutex<Option<(usize, usize, Option<Instant>)>>>;

impl Catalog for Published {
    fn expected(&self) -> Vec<ExpectedSeries> {
        self.0.clone()
    }
}

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn payload(a: usize, v: usize, risk: f64) -> String {
    let t = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
        ))
        .unwrap();
    format!(
        r#"{{"risk_score":{risk},"duration_milliseconds":3,"algorithm_owner":"bench","algorithm_name":"a{a}","algorithm_version":"1.{v}.0","request_id":"r","time":"{t}","session_id":"s"}}"#
    )
}

/// Feeds one low-risk payload per series per second until `stop`; `spike` names a series to
/// send one high value for (and when it was sent).
fn feeder(
    series: Arc<SeriesStore>,
    stop: Arc<AtomicBool>,
    spike: Spike,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let mut batch = Vec::with_capacity(ALGORITHMS * VERSIONS);
            for a in 0..ALGORITHMS {
                for v in 0..VERSIONS {
                    batch.push(payload(a, v, 0.1));
                }
            }
            if let Some((a, v, sent @ None)) = &mut *spike.lock().unwrap() {
                batch.push(payload(*a, *v, 0.9));
                *sent = Some(Instant::now());
            }
            let incoming: Vec<_> = batch
                .iter()
                .map(|j| insights_series::Incoming::new(j, false))
                .collect();
            series.ingest_batch(&incoming).unwrap();
            next += Duration::from_secs(1);
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    })
}

fn summary(text: &str, name: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| l.starts_with(name)) {
        let (k, v) = line.rsplit_once(' ').unwrap();
        out.insert(k.to_string(), v.parse().unwrap_or(f64::NAN));
    }
    out
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[((q * (sorted.len() as f64 - 1.0)).round() as usize).min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (mut rounds, mut crossings) = (6usize, 20usize);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--rounds" => rounds = args.next().unwrap().parse().unwrap(),
            "--crossings" => crossings = args.next().unwrap().parse().unwrap(),
            other => panic!("unknown argument {other}; use --rounds N --crossings N"),
        }
    }
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let series =
        Arc::new(SeriesStore::open(dir.path().join("series"), SeriesConfig::default()).unwrap());
    let expected: Vec<ExpectedSeries> = (0..ALGORITHMS)
        .flat_map(|a| {
            (0..VERSIONS).map(move |v| ExpectedSeries {
                algorithm: AlgorithmPath::new("bench", format!("a{a}")),
                version: format!("1.{v}.0"),
                since: time::OffsetDateTime::now_utc(),
            })
        })
        .collect();
    let alerts = Alerts::open(
        dir.path(),
        AlertsConfig::default(),
        series.clone(),
        Arc::new(Published(expected)),
        Arc::new(SecretBox::load_or_create(dir.path()).unwrap()),
        Clock::system(),
    )
    .unwrap();

    // The receiver: arrival time per (algorithm, version) of each crit notification.
    let arrivals: Arc<Mutex<Vec<(String, String, Instant)>>> = Arc::default();
    let got = arrivals.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let got = got.clone();
            async move {
                let b: Value = serde_json::from_str(&body).unwrap();
                if b["level"] == "crit" {
                    got.lock().unwrap().push((
                        b["algorithm"].as_str().unwrap().to_string(),
                        b["version"].as_str().unwrap().to_string(),
                        Instant::now(),
                    ));
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let endpoint = alerts
        .create_endpoint(&json!({"name": "receiver", "kind": "http", "url": url}))
        .unwrap();
    let fns = ["mean", "max", "min", "p99", "p50", "sum", "count", "last"];
    for a in 0..ALGORITHMS {
        for i in 0..CHECKS_PER_ALGORITHM {
            // One check per algorithm can fire; the others are evaluated in full but their
            // thresholds are out of reach, so notifications measure one path each.
            let (f, value) = if i == 0 {
                ("max", 0.7)
            } else {
                (fns[i % fns.len()], 1e9)
            };
            alerts
                .create_check(&json!({
                    "name": format!("a{a} check {i}"), "kind": "threshold",
                    "query": {"algorithm": format!("bench/a{a}"), "metric": "risk_score", "fn": f, "window": "10s"},
                    "every": format!("{EVERY_S}s"),
                    "thresholds": [{"level": "crit", "type": "greater", "value": value}]
                }))
                .unwrap();
        }
    }
    alerts
        .create_rule(&json!({"name": "all", "endpoint": endpoint["id"], "when": [{"from": "any", "to": "crit"}, {"from": "any", "to": "ok"}]}))
        .unwrap();

    // The feeder alone, for the baseline of CPU.
    let stop = Arc::new(AtomicBool::new(false));
    let spike: Spike = Arc::default();
    let feed = feeder(series.clone(), stop.clone(), spike.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (c0, t0) = (cpu_seconds(), Instant::now());
    tokio::time::sleep(Duration::from_secs(EVERY_S * 2)).await;
    let feeder_cpu_per_s = (cpu_seconds() - c0) / t0.elapsed().as_secs_f64();

    let tasks = alerts.start();
    // Skip the first round (it creates every series' state).
    tokio::time::sleep(Duration::from_secs(EVERY_S + 2)).await;
    println!(
        "1,000 checks ({ALGORITHMS} algorithms x {CHECKS_PER_ALGORITHM}), each over {VERSIONS} versions: {} series evaluations per round, every {EVERY_S} s",
        ALGORITHMS * CHECKS_PER_ALGORITHM * VERSIONS
    );
    println!("feeder alone: {feeder_cpu_per_s:.4} CPU s/s");
    println!("| round | CPU s beyond the feeder | evaluation s (sum) | worst lag s |");
    println!("| ---: | ---: | ---: | ---: |");
    let mut per_round = Vec::new();
    let mut last_eval_sum = summary(
        &prometheus.render(),
        "insights_alert_evaluation_seconds_sum",
    )
    .values()
    .sum::<f64>();
    for r in 0..rounds {
        let (c, t) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_secs(EVERY_S)).await;
        let cpu = cpu_seconds() - c - feeder_cpu_per_s * t.elapsed().as_secs_f64();
        let text = prometheus.render();
        let eval_sum = summary(&text, "insights_alert_evaluation_seconds_sum")
            .values()
            .sum::<f64>();
        let lag = summary(
            &text,
            "insights_alert_evaluation_lag_seconds{quantile=\"1\"}",
        )
        .values()
        .cloned()
        .fold(0.0, f64::max);
        println!(
            "| {r} | {cpu:.3} | {:.3} | {lag:.3} |",
            eval_sum - last_eval_sum
        );
        per_round.push(cpu);
        last_eval_sum = eval_sum;
    }

    // Crossings: one series at a time gets a high value; the time to its message.
    let mut latencies = Vec::new();
    for i in 0..crossings {
        let (a, v) = (i % ALGORITHMS, (i / ALGORITHMS) % VERSIONS);
        // Spread the crossings over the check's period (a fixed stride through 0..10 s), so
        // that they land at every phase of the schedule, not at one.
        let phase = Duration::from_millis((i as u64 * 3_700) % (EVERY_S * 1000));
        tokio::time::sleep(phase).await;
        let before = arrivals.lock().unwrap().len();
        *spike.lock().unwrap() = Some((a, v, None));
        let deadline = Instant::now() + Duration::from_secs(EVERY_S * 4);
        let arrived = loop {
            let got = arrivals.lock().unwrap()[before..]
                .iter()
                .find(|(al, ve, _)| *al == format!("bench/a{a}") && *ve == format!("1.{v}.0"))
                .map(|x| x.2);
            if let Some(t) = got {
                break Some(t);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let sent = spike.lock().unwrap().take().and_then(|s| s.2);
        match (sent, arrived) {
            (Some(s), Some(t)) => latencies.push(t.duration_since(s).as_secs_f64()),
            _ => println!("crossing {i}: no message within {} s", EVERY_S * 4),
        }
        // Back to ok before the next crossing (the window must pass).
        tokio::time::sleep(Duration::from_secs(EVERY_S + 1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    feed.join().unwrap();
    tasks.stop().await;
    latencies.sort_by(f64::total_cmp);
    per_round.sort_by(f64::total_cmp);
    if !latencies.is_empty() {
        println!(
            "payload crossing a threshold -> receiver: p50 {:.2} s, p99 {:.2} s, max {:.2} s over {} crossings (goal <= every + 1 s = {} s)",
            quantile(&latencies, 0.5),
            quantile(&latencies, 0.99),
            latencies.last().unwrap(),
            latencies.len(),
            EVERY_S + 1
        );
    }
    println!(
        "CPU per round beyond the feeder: median {:.3} s (min {:.3}, max {:.3}) of a {EVERY_S} s period",
        quantile(&per_round, 0.5),
        per_round[0],
        per_round.last().unwrap()
    );
}
