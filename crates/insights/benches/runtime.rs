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
//! - `on`: the server runs delivery under SCHED_IDLE with the backlog valve (the default).
//! - Every sink is on: the embedded store, the series store, and Kafka (connected to
//!   librdkafka's mock cluster in this process, a broker sharing the machine).
//! - `on, nice 10`: the same on a server whose background work stays at nice 10 instead of
//!   SCHED_IDLE (`ServerConfig::background_idle = false`).
//! - `on, flat` / `on+report, flat`: the same on a server whose background work runs at
//!   the request path's priority (`ServerConfig::background_nice = 0`): the effect of
//!   running delivery at a lower priority, measured in the same run.
//! - `…, slice`: the default server, HTTP echo, off and on, with the request path's threads
//!   (this process's tokio workers, the client's too) and the echo workers in short scheduler
//!   slices (`insights::background::REQUEST_SLICE`), as the `insights` binary runs its runtime;
//!   the other configurations run in the kernel's default slice, as a library embedding would.
//!
//! The server, the load generator and the workers share the machine; every configuration runs
//! `--rounds` times, interleaved, and the median round is reported.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use insights::serve::{ServerConfig, start};
use support::echo_worker;

#[path = "support.rs"]
mod support;
#[path = "threads.rs"]
mod threads;
use serde_json::json;

struct Args {
    calls: usize,
    concurrency: usize,
    rounds: usize,
    /// `--only NAME`: run that one configuration's rounds and print its throughput, nothing
    /// else (for a profiler attached to this process: `perf record -p`).
    only: Option<String>,
    /// `--broker-nice N`: the niceness of librdkafka's mock broker, the Kafka broker every
    /// server here delivers to (0, the default: a broker sharing the machine at the request
    /// path's priority). A broker on another machine, as Kafka runs in production, takes no
    /// CPU from the calls; a niced one here is the nearest this machine has to that.
    broker_nice: i32,
}

fn args() -> Args {
    let mut a = Args {
        calls: 20_000,
        concurrency: 2,
        rounds: 3,
        only: None,
        broker_nice: 0,
    };
    let usage = "usage: bench_runtime [--calls N] [--concurrency N] [--rounds N] [--broker-nice N] [--only CONFIGURATION]";
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        if pair[0] == "--only" {
            a.only = Some(pair.get(1).expect(usage).clone());
            continue;
        }
        if pair[0] == "--broker-nice" {
            a.broker_nice = pair
                .get(1)
                .and_then(|v| v.parse().ok())
                .filter(|n| (0..=19).contains(n))
                .unwrap_or_else(|| panic!("--broker-nice takes 0 to 19; {usage}"));
            continue;
        }
        let value = pair
            .get(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{usage}"));
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

/// Registers `echo` and `echo_report` (1.0.0 Insights off, 1.1.0 on) on the server at `url`,
/// connects it to the Kafka `brokers`, and answers an API key.
async fn setup(
    client: &reqwest::Client,
    url: &str,
    dir: &Path,
    concurrency: usize,
    brokers: &str,
) -> String {
    let key = support::echo_algorithms(
        client,
        url,
        "bench",
        "bench",
        dir,
        concurrency,
        &[false, true],
    )
    .await;
    let r = client
        .put(format!("{url}/v1/admin/insights/connection"))
        .bearer_auth("bench")
        .json(&json!({"topic": "insights", "brokers": brokers, "connection_type": "plaintext"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    key
}

#[tokio::main]
async fn main() {
    let a = args();
    let dir = tempfile::tempdir().unwrap();
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    mock.create_topic("insights", 1, 1).expect("topic");
    let brokers = mock.bootstrap_servers();
    if a.broker_nice != 0 {
        renice_broker(a.broker_nice);
    }
    let client = reqwest::Client::new();
    // The server under test (the defaults), and two that differ in one setting, each with its
    // data and algorithms under `dir/<name>`.
    let server_with = |name: &'static str, change: fn(&mut ServerConfig)| {
        let (client, root, brokers) = (&client, dir.path().join(name), &brokers);
        async move {
            let mut config = ServerConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                root.join("data"),
                "bench".into(),
            );
            change(&mut config);
            let server = start(config).await.unwrap();
            let url = server.url();
            let key = setup(client, &url, &root, a.concurrency, brokers).await;
            (server, url, key)
        }
    };
    let (server, url, key) = server_with("default", |_| {}).await;
    let (mid, mid_url, mid_key) = server_with("nice10", |c| c.background_idle = false).await;
    let (flat, flat_url, flat_key) = server_with("flat", |c| c.background_nice = 0).await;

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

    // 1.0.0 has Insights off, 1.1.0 on. The last five run with the request path's threads
    // (and the echo workers) in short scheduler slices (`request_slice`).
    let configs = [
        ("http", echo_url.clone(), key.clone()),
        (
            "off",
            format!("{url}/v1/algo/bench/echo/1.0.0"),
            key.clone(),
        ),
        ("on", format!("{url}/v1/algo/bench/echo/1.1.0"), key.clone()),
        (
            "off+report",
            format!("{url}/v1/algo/bench/echo_report/1.0.0"),
            key.clone(),
        ),
        (
            "on+report",
            format!("{url}/v1/algo/bench/echo_report/1.1.0"),
            key.clone(),
        ),
        (
            "on, nice 10",
            format!("{mid_url}/v1/algo/bench/echo/1.1.0"),
            mid_key.clone(),
        ),
        (
            "on+report, nice 10",
            format!("{mid_url}/v1/algo/bench/echo_report/1.1.0"),
            mid_key.clone(),
        ),
        (
            "on, flat",
            format!("{flat_url}/v1/algo/bench/echo/1.1.0"),
            flat_key.clone(),
        ),
        (
            "on+report, flat",
            format!("{flat_url}/v1/algo/bench/echo_report/1.1.0"),
            flat_key.clone(),
        ),
        ("http, slice", echo_url.clone(), key.clone()),
        (
            "off, slice",
            format!("{url}/v1/algo/bench/echo/1.0.0"),
            key.clone(),
        ),
        (
            "on, slice",
            format!("{url}/v1/algo/bench/echo/1.1.0"),
            key.clone(),
        ),
        (
            "off+report, slice",
            format!("{url}/v1/algo/bench/echo_report/1.0.0"),
            key.clone(),
        ),
        (
            "on+report, slice",
            format!("{url}/v1/algo/bench/echo_report/1.1.0"),
            key.clone(),
        ),
    ];
    let sliced = |name: &str| name.ends_with(", slice");
    for (_, u, k) in &configs {
        http(&client, u, k, 1000, a.concurrency).await; // warm-up: workers started, connections open
    }
    if let Some(only) = &a.only {
        let (_, u, k) = configs
            .iter()
            .find(|(name, _, _)| name == only)
            .unwrap_or_else(|| {
                let names: Vec<_> = configs.iter().map(|c| c.0).collect();
                panic!("--only: no configuration {only:?}; there are {names:?}")
            });
        eprintln!("pid {}: running {only}", std::process::id());
        request_slice(sliced(only));
        for _ in 0..a.rounds {
            let s = http(&client, u, k, a.calls, a.concurrency).await;
            println!(
                "{only}: {:.0} calls/s, p50 {:.0} µs, p99 {:.0} µs",
                s.throughput, s.p50_us, s.p99_us
            );
        }
        drop(mock);
        for s in [server, mid, flat] {
            s.shutdown().await;
        }
        return;
    }
    let idle = threads::idle_background_ns().await;
    eprintln!(
        "background threads at rest: {:.2} ms of CPU per 100 ms",
        idle as f64 / 1e6
    );
    let raw_dir = Arc::new(dir.path().to_path_buf());
    let mut results: Vec<Vec<Sample>> = vec![Vec::new(); configs.len() + 1];
    // Per configuration: the CPU its rounds used, by thread group, including the background
    // work they left behind (measured until it settled, outside the timed window).
    let mut used: Vec<Vec<threads::ThreadUse>> = vec![Vec::new(); configs.len()];
    // Payloads dropped during each configuration's rounds (the registry is the process's).
    let mut dropped = vec![0u64; configs.len()];
    let metrics_url = format!("{url}/metrics");
    for round in 0..a.rounds {
        let (calls, conc, d) = (a.calls, a.concurrency, raw_dir.clone());
        results[0].push(
            tokio::task::spawn_blocking(move || raw(calls, conc, &d))
                .await
                .unwrap(),
        );
        let mut dropped_before = dropped_so_far(&client, &metrics_url).await;
        for (i, (name, u, k)) in configs.iter().enumerate() {
            request_slice(sliced(name));
            let before = threads::ThreadUse::now();
            let sample = http(&client, u, k, a.calls, a.concurrency).await;
            eprintln!("  {name}: {:.0} calls/s", sample.throughput);
            results[i + 1].push(sample);
            threads::background_settled(idle).await;
            used[i].push(threads::ThreadUse::now().since(&before));
            let now = dropped_so_far(&client, &metrics_url).await;
            dropped[i] += now - dropped_before;
            dropped_before = now;
        }
        eprintln!("round {} of {} done", round + 1, a.rounds);
    }
    let names = [
        "raw round trip",
        "HTTP echo (no runtime)",
        "/v1/algo, Insights off",
        "/v1/algo, Insights on (every sink; default: SCHED_IDLE, nice 0 when behind)",
        "/v1/algo + 1 report, Insights off",
        "/v1/algo + 1 report, Insights on (every sink; default: SCHED_IDLE, nice 0 when behind)",
        "/v1/algo, Insights on, background at nice 10 (background_idle = false)",
        "/v1/algo + 1 report, Insights on, background at nice 10 (background_idle = false)",
        "/v1/algo, Insights on, background at normal priority",
        "/v1/algo + 1 report, Insights on, background at normal priority",
        "HTTP echo, short slice",
        "/v1/algo, Insights off, short slice",
        "/v1/algo, Insights on, short slice (as `insights serve` runs)",
        "/v1/algo + 1 report, Insights off, short slice",
        "/v1/algo + 1 report, Insights on, short slice (as `insights serve` runs)",
    ];
    println!(
        "calls per configuration and round: {}, concurrency: {}, rounds: {} (median round, and min–max over rounds)\n",
        a.calls, a.concurrency, a.rounds
    );
    println!("| configuration | calls/s | p50 µs | p99 µs |");
    println!("| --- | ---: | ---: | ---: |");
    for (n, r) in names.iter().zip(&results) {
        let t = spread(r.iter().map(|s| s.throughput));
        let p50 = spread(r.iter().map(|s| s.p50_us));
        let p99 = spread(r.iter().map(|s| s.p99_us));
        println!("| {n} | {t} | {p50} | {p99} |");
    }
    // Each ratio pairs the two sides of the same round, then the rounds are summarized.
    let ratio = |name: &str, x: usize, y: usize, goal: &str| {
        let pairs = results[x].iter().zip(&results[y]);
        let t = spread(pairs.clone().map(|(a, b)| a.throughput / b.throughput));
        let p99 = spread(pairs.map(|(a, b)| a.p99_us / b.p99_us));
        println!("| {name} | {t} | {p99} | {goal} |");
    };
    println!("\n| ratio (per round: median, min–max) | throughput | p99 | goal |");
    println!("| --- | ---: | ---: | --- |");
    ratio("Insights on / off", 3, 2, "throughput ≥ 0.95, p99 ≤ 1.1");
    ratio(
        "Insights on / off, with a report",
        5,
        4,
        "throughput ≥ 0.95, p99 ≤ 1.1",
    );
    ratio(
        "background at nice 10 without SCHED_IDLE: on / off",
        6,
        2,
        "(the effect of the priority)",
    );
    ratio(
        "background at nice 10 without SCHED_IDLE: on / off, with a report",
        7,
        4,
        "",
    );
    ratio("background at normal priority: on / off", 8, 2, "");
    ratio(
        "background at normal priority: on / off, with a report",
        9,
        4,
        "",
    );
    ratio("HTTP + runtime (off) / raw round trip", 2, 0, "(within 2x)");
    ratio("HTTP + runtime (off) / HTTP echo", 2, 1, "≥ 0.6");
    ratio(
        "short slice: Insights on / off",
        12,
        11,
        "throughput ≥ 0.95, p99 ≤ 1.1",
    );
    ratio(
        "short slice: Insights on / off, with a report",
        14,
        13,
        "throughput ≥ 0.95, p99 ≤ 1.1",
    );
    ratio(
        "short slice: HTTP + runtime (off) / HTTP echo",
        11,
        10,
        "≥ 0.6",
    );
    ratio("short slice / default slice: Insights off", 11, 2, "");
    ratio("short slice / default slice: Insights on", 12, 3, "");
    cpu_table(&names[1..], &used, &dropped, a.calls);
    let m: Vec<Sample> = results.iter_mut().map(|r| median(r)).collect();
    println!(
        "\nper call at p50: raw round trip {:.0} µs, HTTP alone {:.0} µs, runtime on top of HTTP {:.0} µs",
        m[0].p50_us,
        m[1].p50_us,
        m[2].p50_us - m[1].p50_us
    );
    // The metrics registry is the process's: these count both servers.
    let text = client
        .get(format!("{}/metrics", server.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in text
        .lines()
        .filter(|l| l.starts_with("insights_payloads_dropped_total"))
    {
        println!("dropped (both servers): {line}");
    }
    // How often the valve raised a lane out of SCHED_IDLE in all rounds, and why (the registry
    // is the process's, so the servers' lanes count together; only the default server's
    // follow).
    for line in text
        .lines()
        .filter(|l| l.starts_with("insights_background_raised_total"))
    {
        println!("raised (all rounds): {line}");
    }
    drop(mock);
    server.shutdown().await;
    mid.shutdown().await;
    flat.shutdown().await;
}

/// Puts the request path in short scheduler slices (`slice`), as `insights serve` does
/// ([`insights::background::shorten_slice`] on its runtime's threads, which the algorithms'
/// processes inherit), or back in the default: this process's tokio workers (where the client
/// runs too) and every process descended from this one (the echo workers, which were started
/// before, from threads with the default slice).
fn request_slice(slice: bool) {
    let slice = slice.then_some(insights::background::REQUEST_SLICE);
    let mut tids = Vec::new();
    let mut pids = vec![std::process::id().to_string()];
    while let Some(pid) = pids.pop() {
        let own = pid == std::process::id().to_string();
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue; // exited
        };
        for task in tasks.flatten() {
            let dir = task.path();
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
            pids.extend(read("children").split_whitespace().map(str::to_string));
            if !own || read("comm").starts_with(threads::TOKIO_WORKER) {
                tids.extend(
                    task.file_name()
                        .to_str()
                        .and_then(|t| t.parse::<i32>().ok()),
                );
            }
        }
    }
    for tid in tids {
        // A thread may have exited since it was listed.
        let _ = insights::background::set_slice(tid, slice);
    }
}

/// Sets the niceness of the mock broker's threads: before any server starts, this process's
/// only librdkafka threads (`rdk:*`) are the mock cluster's.
fn renice_broker(nice: i32) {
    let tids: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with("rdk:"))
        })
        .filter_map(|t| t.file_name().to_str().map(str::to_string))
        .collect();
    assert!(
        !tids.is_empty(),
        "the mock cluster has no rdk:* threads to renice"
    );
    for tid in &tids {
        let id: i32 = tid.parse().unwrap();
        insights::background::set_nice(id, nice)
            .unwrap_or_else(|e| panic!("setting thread {tid} to nice {nice}: {e}"));
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap();
        assert_eq!(
            insights::background::niceness_in_stat(&stat),
            Some(nice),
            "thread {tid} is not at nice {nice}"
        );
    }
    eprintln!("mock broker: {} rdk:* threads at nice {nice}", tids.len());
}

/// `insights_payloads_dropped_total`, every reason, as `/metrics` says now.
async fn dropped_so_far(client: &reqwest::Client, url: &str) -> u64 {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("insights_payloads_dropped_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// CPU per call by thread group, over all rounds of each configuration; the echo workers (child
/// processes) in a column of their own, outside the total, which stays the bench process's.
fn cpu_table(names: &[&str], used: &[Vec<threads::ThreadUse>], dropped: &[u64], calls: usize) {
    const GROUPS: [(&str, &str); 5] = [
        (
            threads::TOKIO_WORKER,
            "client + request path (tokio workers)",
        ),
        (
            "insights-backgr",
            "dispatcher, store, series, spool (insights-background)",
        ),
        ("kafka-producer", "kafka-producer"),
        ("rdk:", "librdkafka + mock broker (rdk:*)"),
        ("series-mainten", "series-maintenance"),
    ];
    println!(
        "\nCPU µs per call by thread, all rounds (the leftover background work of a round is counted with it):\n"
    );
    print!("| configuration | total |");
    for (_, label) in GROUPS {
        print!(" {label} |");
    }
    println!(
        " other | process total (exited threads too) | context switches per call | payloads dropped | echo worker processes (not in total) | their context switches per call |"
    );
    println!("| --- |{}", " ---: |".repeat(GROUPS.len() + 7));
    for ((name, rounds), dropped) in names.iter().zip(used).zip(dropped) {
        let n = (calls * rounds.len()) as f64;
        let mut per = [0u64; GROUPS.len() + 1];
        let (mut total, mut switches) = (0u64, 0u64);
        let process: u64 = rounds.iter().map(|u| u.process_ns()).sum();
        for (group, cpu, sw) in rounds.iter().flat_map(|u| u.groups()) {
            let slot = GROUPS
                .iter()
                .position(|(prefix, _)| group.starts_with(prefix))
                .unwrap_or(GROUPS.len());
            per[slot] += cpu;
            total += cpu;
            switches += sw;
        }
        print!("| {name} | {:.1} |", total as f64 / n / 1e3);
        for v in per {
            print!(" {:.1} |", v as f64 / n / 1e3);
        }
        let (child_cpu, child_switches) = rounds
            .iter()
            .map(|u| u.children())
            .fold((0, 0), |(c, s), (cpu, sw)| (c + cpu, s + sw));
        println!(
            " {:.1} | {:.2} | {dropped} | {:.1} | {:.2} |",
            process as f64 / n / 1e3,
            switches as f64 / n,
            child_cpu as f64 / n / 1e3,
            child_switches as f64 / n
        );
    }
}

/// `median (min–max)` of the values.
fn spread(values: impl Iterator<Item = f64>) -> String {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let fmt = |x: f64| {
        if x.abs() >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.3}")
        }
    };
    format!(
        "{} ({}–{})",
        fmt(v[v.len() / 2]),
        fmt(v[0]),
        fmt(v[v.len() - 1])
    )
}
