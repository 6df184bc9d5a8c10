//! Runtime benchmark (run it with `scripts/bench-runtime`): throughput and p50/p99 latency of
//! `POST /v1/algo` with Insights on and off, against the raw cost of the worker round trip
//! without HTTP, all measured in one run on this machine.
//!
//! - `raw`: the bench itself writes request lines to echo workers' stdin and reads their answers
//!   from their FIFOs (blocking I/O, one thread per worker): no HTTP, no runtime.
//! - `http echo`: the same HTTP client against a bare axum route that parses the JSON body and
//!   answers it in Algorithmia's shape: the cost of HTTP alone, no runtime, no worker.
//! - `off` / `on`: the full path (HTTP client → axum → runtime → worker actor → worker and back)
//!   for a version with Insights off / on (on: payload built, handed off, written to SQLite).
//! - `off+report` / `on+report`: the same, with the algorithm reporting one metric per call
//!   through its insights endpoint, as `client.report_insights` does.
//!
//! The server, the load generator and the workers share the machine; every configuration runs
//! `--rounds` times, interleaved, and the median round is reported.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use insights::serve::{ServerConfig, start};
use serde_json::json;

struct Args {
    calls: usize,
    concurrency: usize,
    rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        calls: 20_000,
        concurrency: 2,
        rounds: 3,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            panic!("usage: bench_runtime [--calls N] [--concurrency N] [--rounds N]")
        });
        match pair[0].as_str() {
            "--calls" => a.calls = value,
            "--concurrency" => a.concurrency = value,
            "--rounds" => a.rounds = value,
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

#[derive(Clone, Copy)]
struct Sample {
    throughput: f64,
    p50_us: f64,
    p99_us: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Sample {
    latencies.sort();
    let q = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    Sample {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: q(0.50).as_secs_f64() * 1e6,
        p99_us: q(0.99).as_secs_f64() * 1e6,
    }
}

fn echo_worker() -> PathBuf {
    let p = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("echo_worker");
    assert!(
        p.exists(),
        "build the echo_worker example first (scripts/bench-runtime does)"
    );
    p
}

/// The raw baseline: `concurrency` echo processes, each driven by one thread.
fn raw(calls: usize, concurrency: usize, dir: &Path) -> Sample {
    let per = calls / concurrency;
    let threads: Vec<_> = (0..concurrency)
        .map(|w| {
            let fifo = dir.join(format!("raw-{w}"));
            let _ = std::fs::remove_file(&fifo);
            assert!(
                Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .unwrap()
                    .success()
            );
            // Read-write, so opening does not wait for the writer.
            let answers = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&fifo)
                .unwrap();
            let mut child = Command::new(echo_worker())
                .arg(&fifo)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let mut ready = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut ready)
                .unwrap();
            assert_eq!(ready.trim(), "PIPE_INIT_COMPLETE");
            std::thread::spawn(move || {
                let mut stdin = child.stdin.take().unwrap();
                let mut answers = BufReader::new(answers);
                let mut line = String::new();
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let t = Instant::now();
                    writeln!(
                        stdin,
                        "{{\"content_type\":\"json\",\"data\":{{\"n\":{i}}}}}"
                    )
                    .unwrap();
                    line.clear();
                    answers.read_line(&mut line).unwrap();
                    lat.push(t.elapsed());
                }
                drop(stdin);
                let _ = child.wait();
                lat
            })
        })
        .collect();
    let start = Instant::now();
    let lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    summarize(lat, start.elapsed())
}

async fn http(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    calls: usize,
    concurrency: usize,
) -> Sample {
    let per = calls / concurrency;
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, key) = (client.clone(), url.to_string(), key.to_string());
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let t = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("Authorization", format!("Simple {key}"))
                        .json(&json!({"n": i}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(resp.status(), 200);
                    let body = resp.bytes().await.unwrap();
                    assert!(body.starts_with(b"{\"result\""), "{body:?}");
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat = Vec::with_capacity(calls);
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    summarize(lat, start.elapsed())
}

fn median(samples: &mut [Sample]) -> Sample {
    samples.sort_by(|a, b| a.throughput.total_cmp(&b.throughput));
    samples[samples.len() / 2]
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let server = start(ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.path().join("data"),
        "bench".into(),
    ))
    .await
    .unwrap();
    let url = server.url();
    let client = reqwest::Client::new();
    let admin = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{url}{path}"))
            .bearer_auth("bench")
            .json(&body)
            .send()
    };
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let echo = echo_worker();
    for (name, command) in [
        ("echo", json!([echo])),
        (
            "echo_report",
            json!(["/usr/bin/env", "ECHO_REPORT=1", echo]),
        ),
    ] {
        let r = admin(
            "/v1/algorithms/bench",
            json!({"name": name, "source": {"path": src, "command": command}, "settings": {"pool_size": a.concurrency}}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        for insights in [false, true] {
            let r = admin(
                &format!("/v1/algorithms/bench/{name}/versions"),
                json!({"version_info": {"version_type": "minor"}, "settings": {"insights_enabled": insights}}),
            )
            .await
            .unwrap();
            assert_eq!(r.status(), 201);
        }
    }
    let key: serde_json::Value = admin("/v1/admin/api-keys", json!({"name": "bench"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_string();

    // A bare HTTP baseline on the same stack.
    let echo_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_url = format!("http://{}/echo", echo_listener.local_addr().unwrap());
    tokio::spawn(async move {
        let app = axum::Router::new().route(
            "/echo",
            axum::routing::post(|body: axum::Json<serde_json::Value>| async move {
                axum::Json(json!({"result": body.0, "metadata": {"content_type": "json", "duration": 0.0}}))
            }),
        );
        axum::serve(echo_listener, app).await.unwrap();
    });

    // 1.0.0 has Insights off, 1.1.0 on.
    let configs = [
        ("http", echo_url),
        ("off", format!("{url}/v1/algo/bench/echo/1.0.0")),
        ("on", format!("{url}/v1/algo/bench/echo/1.1.0")),
        (
            "off+report",
            format!("{url}/v1/algo/bench/echo_report/1.0.0"),
        ),
        (
            "on+report",
            format!("{url}/v1/algo/bench/echo_report/1.1.0"),
        ),
    ];
    for (_, u) in &configs {
        http(&client, u, &key, 1000, a.concurrency).await; // warm-up: workers started, connections open
    }
    let raw_dir = Arc::new(dir.path().to_path_buf());
    let mut results: Vec<Vec<Sample>> = vec![Vec::new(); configs.len() + 1];
    for round in 0..a.rounds {
        let (calls, conc, d) = (a.calls, a.concurrency, raw_dir.clone());
        results[0].push(
            tokio::task::spawn_blocking(move || raw(calls, conc, &d))
                .await
                .unwrap(),
        );
        for (i, (_, u)) in configs.iter().enumerate() {
            results[i + 1].push(http(&client, u, &key, a.calls, a.concurrency).await);
        }
        eprintln!("round {} of {} done", round + 1, a.rounds);
    }
    let m: Vec<Sample> = results.iter_mut().map(|r| median(r)).collect();
    let names = [
        "raw round trip",
        "HTTP echo (no runtime)",
        "/v1/algo, Insights off",
        "/v1/algo, Insights on",
        "/v1/algo + 1 report, Insights off",
        "/v1/algo + 1 report, Insights on",
    ];
    println!(
        "calls per configuration and round: {}, concurrency: {}, rounds: {} (median round shown)\n",
        a.calls, a.concurrency, a.rounds
    );
    println!("| configuration | calls/s | p50 µs | p99 µs |");
    println!("| --- | ---: | ---: | ---: |");
    for (n, s) in names.iter().zip(&m) {
        println!(
            "| {n} | {:.0} | {:.0} | {:.0} |",
            s.throughput, s.p50_us, s.p99_us
        );
    }
    let (raw, http_echo, off, on, off_r, on_r) = (m[0], m[1], m[2], m[3], m[4], m[5]);
    let row = |name: &str, x: Sample, y: Sample, goal: &str| {
        println!(
            "| {name} | {:.3} | {:.3} | {goal} |",
            x.throughput / y.throughput,
            x.p99_us / y.p99_us
        );
    };
    println!("\n| ratio | throughput | p99 | goal |");
    println!("| --- | ---: | ---: | --- |");
    row(
        "Insights on / off",
        on,
        off,
        "throughput ≥ 0.95, p99 ≤ 1.05",
    );
    row(
        "Insights on / off, with a report",
        on_r,
        off_r,
        "throughput ≥ 0.95, p99 ≤ 1.05",
    );
    row(
        "HTTP + runtime (off) / raw round trip",
        off,
        raw,
        "throughput ≥ 0.5 (within 2x)",
    );
    row(
        "HTTP + runtime (off) / HTTP echo",
        off,
        http_echo,
        "(what the runtime adds to HTTP)",
    );
    println!(
        "\nper call at p50: raw round trip {:.0} µs, HTTP alone {:.0} µs, runtime on top of HTTP {:.0} µs",
        raw.p50_us,
        http_echo.p50_us,
        off.p50_us - http_echo.p50_us
    );
    server.shutdown().await;
}
