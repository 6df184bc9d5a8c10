//! Series benchmark (run it with `scripts/bench-series`): the embedded series store
//! (`insights-series`) side by side with a real `influxd` 1.6.7 on the same points, all measured
//! in one run on this machine.
//!
//! - **data**: `bench/credit_card_approval` version 1.0.0, one payload a minute for 30 days
//!   (43,200), and `bench/fraud_detection` versions 1.0.0 … 1.9.0, one payload every 10 s each
//!   for the last 24 hours (86,400); 4 metrics per payload plus `duration_milliseconds`, so 5
//!   metric values each; payloads in time order, as the runtime encodes them.
//! - **ingest**: the store's `ingest_batch` on this thread, batches of 1024 as the dispatcher
//!   hands them over, its write-ahead log on (every batch written before it returns, synced every
//!   second), its clock following the payloads as if they arrived live; vs `influxd` taking the
//!   same payloads as line protocol (the bridge's `Mapping`, measurement `algorithmia`, tags
//!   algorithm_name/owner/version, fields the metrics; timestamps in µs) on `/write?precision=u`,
//!   5,000-line batches over one keep-alive connection. `--rounds` rounds of the store (live,
//!   then as a backfill: the clock at the end of the data), then of `influxd`, each into
//!   a fresh store and a fresh database; the median round is reported.
//! - **query**: a 30-day 1-minute `mean` of one metric, a 7-day 1-hour `p99`, a 24-hour 1-minute
//!   `mean` over 10 versions; each as the store's `query` in process, as the series API over
//!   HTTP (`/v1/admin/insights/series`, a server started on the store's directory), and as the
//!   equivalent InfluxQL on `influxd`; p50 (and p90) of `--runs` runs after 2 warm-up runs.
//! - **disk**: the store's directory after a checkpoint vs `influxd`'s data and wal directories
//!   of the database after it compacted (the script shortens its cold-write durations so that it
//!   does within the run; what was measured is printed).
//! - **/v1/algo**: throughput of a native echo algorithm with Insights on (with and without one
//!   reported metric) on a server with the series sink vs one without it (`series_enabled`),
//!   interleaved, `--algo-rounds` rounds, median round.

#[path = "support.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use insights::serve::{ServerConfig, start};
use insights_payload::{AlgorithmRef, MetricSet, MetricValue, Payload, RequestId, SessionId};
use insights_series::{
    AlgorithmPath, Function, Incoming, ManualClock, Query, SeriesConfig, SeriesStore,
};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const MINUTE: i64 = 60_000_000;
const DAY: i64 = 86_400_000_000;
/// 2023-12-15T00:00:00Z, in microseconds: the end of the data and the store's "now" at query time.
const END: i64 = 1_702_598_400_000_000;
const OWNER: &str = "bench";
const LONG: &str = "credit_card_approval";
const WIDE: &str = "fraud_detection";
const VALUES_PER_PAYLOAD: usize = 5;
const ADMIN: &str = "bench";

struct Args {
    rounds: usize,
    runs: usize,
    calls: usize,
    concurrency: usize,
    algo_rounds: usize,
}

fn args() -> Args {
    let mut a = Args {
        rounds: 3,
        runs: 20,
        calls: 20_000,
        concurrency: 2,
        algo_rounds: 3,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            panic!(
                "usage: bench_series [--rounds N] [--runs N] [--calls N] [--concurrency N] [--algo-rounds N]"
            )
        });
        match pair[0].as_str() {
            "--rounds" => a.rounds = value,
            "--runs" => a.runs = value,
            "--calls" => a.calls = value,
            "--concurrency" => a.concurrency = value,
            "--algo-rounds" => a.algo_rounds = value,
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(a.rounds > 0 && a.runs > 0 && a.algo_rounds > 0 && a.concurrency > 0);
    a
}

fn at(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).expect("in range")
}

fn rfc3339(us: i64) -> String {
    at(us).format(&Rfc3339).unwrap()
}

/// The exact JSON of one payload, through `Payload::to_json` (the one encoder).
fn payload(name: &str, version: &str, time_us: i64, i: usize, v: usize) -> (i64, String) {
    let mut set = MetricSet::new();
    let metrics = [
        ("risk_score", ((i * 31 + v * 17) % 1000) as f64 / 1000.0),
        ("approved", (i % 2) as f64),
        ("amount", (i % 997) as f64 * 1.5),
        ("confidence", ((i * 13 + v) % 100) as f64 / 100.0),
    ];
    for (k, x) in metrics {
        let n = serde_json::Number::from_f64(x).expect("finite");
        set.insert(k, MetricValue::from(n)).expect("a valid metric");
    }
    let json = Payload {
        algorithm: AlgorithmRef {
            owner: OWNER.into(),
            name: name.into(),
            version: version.into(),
        },
        session_id: SessionId::new(),
        request_id: RequestId::new(),
        duration_milliseconds: (i % 50) as u64,
        time: at(time_us),
        metrics: set,
        status: None,
        failed: false,
    }
    .to_json();
    (time_us, json)
}

/// Every payload of the run, in time order.
fn data() -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for i in 0..30 * 1440 {
        let t = END - 30 * DAY + i as i64 * MINUTE + ((i * 7919) % 50) as i64 * 1_000_000;
        out.push(payload(LONG, "1.0.0", t, i, 0));
    }
    for i in 0..8640 {
        for v in 0..10 {
            let t = END - DAY + i as i64 * 10_000_000 + v as i64 * 1000;
            out.push(payload(WIDE, &format!("1.{v}.0"), t, i, v));
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out
}

/// The same payloads as the bridge writes them (one line each, nanosecond timestamps cut to
/// microseconds for `precision=u`), in batches of 5,000 lines.
fn line_batches(payloads: &[(i64, String)]) -> Vec<&'static [u8]> {
    let mapping = insights_bridge::Mapping::default();
    payloads
        .chunks(5000)
        .map(|chunk| {
            let mut out = Vec::new();
            let mut line = Vec::new();
            for (_, p) in chunk {
                line.clear();
                mapping.encode(p.as_bytes(), &mut line).unwrap();
                assert!(
                    line.ends_with(b"000\n"),
                    "a timestamp in whole microseconds"
                );
                line.truncate(line.len() - 4);
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
            &*Box::leak(out.into_boxed_slice())
        })
        .collect()
}

fn series_config(clock: &ManualClock) -> SeriesConfig {
    SeriesConfig {
        clock: clock.clone().into(),
        // No checkpoint inside a measurement; the one measured for disk is explicit.
        checkpoint_interval: Duration::from_secs(3600),
        wal_max_bytes: 1 << 40,
        ..SeriesConfig::default()
    }
}

/// Ingests everything into a fresh store at `dir`; returns the time it took and the store.
/// `live`: the clock follows the payloads (each batch's points enter the raw level, which
/// prunes what passed its hour); otherwise it stands at the end of the data (a backfill: points
/// older than an hour skip the raw level).
fn series_ingest(dir: &Path, payloads: &[(i64, String)], live: bool) -> (Duration, SeriesStore) {
    let clock = ManualClock::new(at(if live { payloads[0].0 } else { END }));
    let store = SeriesStore::open(dir, series_config(&clock)).unwrap();
    let mut values = 0;
    let start = Instant::now();
    for chunk in payloads.chunks(1024) {
        if live {
            clock.set(at(chunk[chunk.len() - 1].0 + 1_000_000));
        }
        let batch: Vec<Incoming<'_>> = chunk.iter().map(|(_, m)| Incoming::new(m, false)).collect();
        let report = store.ingest_batch(&batch).unwrap();
        assert!(report.refused.is_empty(), "{:?}", report.refused);
        values += report.values;
    }
    let elapsed = start.elapsed();
    assert_eq!(values, payloads.len() * VALUES_PER_PAYLOAD);
    clock.set(at(END));
    (elapsed, store)
}

async fn influx_query(client: &reqwest::Client, url: &str, db: &str, q: &str) -> Vec<u8> {
    let resp = client
        .post(format!("{url}/query"))
        .form(&[("db", db), ("q", q)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.bytes().await.unwrap();
    assert!(
        status.is_success(),
        "{q}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    body.to_vec()
}

async fn influx_ingest(
    client: &reqwest::Client,
    url: &str,
    db: &str,
    batches: &[&'static [u8]],
) -> Duration {
    influx_query(client, url, db, &format!("CREATE DATABASE \"{db}\"")).await;
    let write = format!("{url}/write?db={db}&precision=u");
    let start = Instant::now();
    for b in batches {
        let resp = client.post(&write).body(*b).send().await.unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        assert_eq!(status, 204, "{text}");
    }
    start.elapsed()
}

fn du(path: &Path) -> (u64, usize) {
    let mut bytes = 0;
    let mut files = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                let (b, f) = du(&e.path());
                bytes += b;
                files += f;
            } else {
                bytes += m.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

fn count_ext(path: &Path, ext: &str) -> usize {
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                n += count_ext(&p, ext);
            } else if p.extension().is_some_and(|x| x == ext) {
                n += 1;
            }
        }
    }
    n
}

fn percentile(mut d: Vec<Duration>, p: f64) -> Duration {
    d.sort();
    d[((d.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Case {
    label: &'static str,
    name: &'static str,
    function: Function,
    every: &'static str,
    from: i64,
    influxql: String,
}

fn cases() -> Vec<Case> {
    let influxql = |select: &str, name: &str, from: i64, group: &str| {
        format!(
            "SELECT {select} FROM \"algorithmia\" WHERE \"algorithm_owner\" = '{OWNER}' AND \"algorithm_name\" = '{name}' AND time >= {} AND time < {} GROUP BY {group} fill(none)",
            from * 1000,
            END * 1000
        )
    };
    vec![
        Case {
            label: "30 d, 1 m mean, one metric",
            name: LONG,
            function: Function::Mean,
            every: "1m",
            from: END - 30 * DAY,
            influxql: influxql("mean(\"risk_score\")", LONG, END - 30 * DAY, "time(1m)"),
        },
        Case {
            label: "7 d, 1 h p99",
            name: LONG,
            function: Function::P99,
            every: "1h",
            from: END - 7 * DAY,
            influxql: influxql(
                "percentile(\"risk_score\", 99)",
                LONG,
                END - 7 * DAY,
                "time(1h)",
            ),
        },
        Case {
            label: "24 h, 1 m mean, 10 versions",
            name: WIDE,
            function: Function::Mean,
            every: "1m",
            from: END - DAY,
            influxql: influxql(
                "mean(\"risk_score\")",
                WIDE,
                END - DAY,
                "time(1m), \"algorithm_version\"",
            ),
        },
    ]
}

/// Rows of an InfluxQL answer, over all its series.
fn influx_rows(body: &[u8]) -> (usize, usize) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    let series = v["results"][0]["series"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let rows = series
        .iter()
        .map(|s| s["values"].as_array().map_or(0, Vec::len))
        .sum();
    (series.len(), rows)
}

#[derive(Clone, Copy)]
struct Sample {
    throughput: f64,
}

async fn load(
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
                for i in 0..per {
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
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    Sample {
        throughput: (per * concurrency) as f64 / start.elapsed().as_secs_f64(),
    }
}

/// A server with an echo algorithm (`echo`, and `echo_report` reporting one metric per call),
/// Insights on; returns it, its URL and an API key.
async fn algo_server(
    dir: &Path,
    series_enabled: bool,
    concurrency: usize,
) -> (insights::serve::RunningServer, String, String) {
    let mut config = ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("data"),
        ADMIN.into(),
    );
    config.series_enabled = series_enabled;
    let server = start(config).await.unwrap();
    let url = server.url();
    let key = support::echo_algorithms(
        &reqwest::Client::new(),
        &url,
        ADMIN,
        OWNER,
        dir,
        concurrency,
        &[true],
    )
    .await;
    (server, url, key)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let a = args();
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let tmp = tempfile::tempdir().unwrap();
    let influx_dir = tmp.path().join("influxd");
    std::fs::create_dir_all(&influx_dir).unwrap();
    let (_influxd, influx) = insights_testkit::influxd(&influx_dir);
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{influx}/ping"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 204)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let payloads = data();
    let batches = line_batches(&payloads);
    let values = payloads.len() * VALUES_PER_PAYLOAD;
    let json_bytes: usize = payloads.iter().map(|(_, p)| p.len()).sum();
    let line_bytes: usize = batches.iter().map(|b| b.len()).sum();
    eprintln!(
        "{} payloads ({values} values), JSON {:.0} B/payload, line protocol {:.0} B/payload",
        payloads.len(),
        json_bytes as f64 / payloads.len() as f64,
        line_bytes as f64 / payloads.len() as f64
    );

    // Ingest: every series round first (influxd idle), then every influxd round (its
    // background compaction of a round would otherwise share the cores with the store's next
    // round). The last round's store and database are kept.
    let mut series_rates = Vec::new();
    let mut kept_store = None;
    for round in 0..a.rounds {
        let dir = tmp.path().join(format!("series{round}"));
        let (sd, store) = series_ingest(&dir, &payloads, true);
        series_rates.push(values as f64 / sd.as_secs_f64());
        eprintln!(
            "ingest round {}: series store {:.0} values/s ({:.2} s)",
            round + 1,
            series_rates[round],
            sd.as_secs_f64()
        );
        if let Some((old_store, old_dir)) = kept_store.replace((store, dir)) {
            drop(old_store);
            let _ = std::fs::remove_dir_all(old_dir);
        }
    }
    let mut backfill_rates = Vec::new();
    for round in 0..a.rounds {
        let dir = tmp.path().join(format!("backfill{round}"));
        let (sd, backfill) = series_ingest(&dir, &payloads, false);
        backfill_rates.push(values as f64 / sd.as_secs_f64());
        drop(backfill);
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut influx_rates = Vec::new();
    let mut kept_db: Option<String> = None;
    for round in 0..a.rounds {
        let db = format!("bench{round}");
        let id = influx_ingest(&client, &influx, &db, &batches).await;
        influx_rates.push(values as f64 / id.as_secs_f64());
        eprintln!(
            "ingest round {}: influxd {:.0} values/s ({:.2} s)",
            round + 1,
            influx_rates[round],
            id.as_secs_f64()
        );
        if let Some(old_db) = kept_db.replace(db) {
            influx_query(&client, &influx, "", &format!("DROP DATABASE \"{old_db}\"")).await;
        }
    }
    let (store, series_dir) = kept_store.unwrap();
    let db = kept_db.unwrap();
    let series_rate = median(&mut series_rates.clone());
    let backfill_rate = median(&mut backfill_rates.clone());
    let influx_rate = median(&mut influx_rates.clone());

    // Disk: the store after a checkpoint; influxd after it compacted (or what it had after 180 s).
    let t = Instant::now();
    store.checkpoint().unwrap();
    let checkpoint = t.elapsed();
    let (series_disk, series_files) = du(&series_dir.join("series"));
    let mut listing: Vec<String> = std::fs::read_dir(series_dir.join("series"))
        .unwrap()
        .flatten()
        .map(|e| {
            format!(
                "{} {} B",
                e.file_name().to_string_lossy(),
                e.metadata().unwrap().len()
            )
        })
        .collect();
    listing.sort();
    let wal = influx_dir.join("wal").join(&db);
    let data_dir = influx_dir.join("data").join(&db);
    let waited = Instant::now();
    let mut last = (0, 0);
    let mut stable_since = Instant::now();
    let compacted = loop {
        let now = (du(&wal).0, du(&data_dir).0);
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
        // The WAL snapshotted into TSM files, and the files unchanged for 15 s (full compaction).
        if now.0 < 1024 && stable_since.elapsed() > Duration::from_secs(15) {
            break true;
        }
        if waited.elapsed() > Duration::from_secs(180) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (influx_wal, _) = du(&wal);
    let (influx_data, _) = du(&data_dir);
    let tsm_files = count_ext(&data_dir, "tsm");
    let shards = std::fs::read_dir(data_dir.join("autogen"))
        .map(|d| d.count())
        .unwrap_or(0);

    // Queries: in process, over the series API, and InfluxQL.
    let mut query_rows = Vec::new();
    let cases = cases();
    for c in &cases {
        let q = Query {
            algorithm: AlgorithmPath::new(OWNER, c.name),
            metric: "risk_score".into(),
            function: c.function,
            every: c.every.parse().unwrap(),
            from: at(c.from),
            to: at(END),
            version: None,
        };
        let r = store.query(&q).unwrap();
        let windows: usize = r.series.iter().map(|s| s.points.len()).sum();
        let versions = r.series.len();
        let mut d = Vec::new();
        for i in 0..a.runs + 2 {
            let t = Instant::now();
            std::hint::black_box(store.query(&q).unwrap());
            if i >= 2 {
                d.push(t.elapsed());
            }
        }
        query_rows.push((windows, versions, d));
    }
    drop(store);

    // The series API: a server on the store's directory, its clock at the end of the data.
    let api_server = {
        let mut config = ServerConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            series_dir.clone(),
            ADMIN.into(),
        );
        config.series = series_config(&ManualClock::new(at(END)));
        start(config).await.unwrap()
    };
    let api = api_server.url();
    let mut api_rows = Vec::new();
    let mut influx_rows_ = Vec::new();
    for c in &cases {
        let params = [
            ("algorithm", format!("{OWNER}/{}", c.name)),
            ("metric", "risk_score".into()),
            ("fn", c.function.as_str().into()),
            ("every", c.every.into()),
            ("from", rfc3339(c.from)),
            ("to", rfc3339(END)),
        ];
        let mut d = Vec::new();
        let mut windows = 0;
        for i in 0..a.runs + 2 {
            let t = Instant::now();
            let resp = client
                .get(format!("{api}/v1/admin/insights/series"))
                .bearer_auth(ADMIN)
                .query(&params)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.bytes().await.unwrap();
            if i >= 2 {
                d.push(t.elapsed());
            } else {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                windows = v["series"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["points"].as_array().unwrap().len())
                    .sum();
            }
        }
        api_rows.push((windows, d));

        let mut d = Vec::new();
        let mut shape = (0, 0);
        for i in 0..a.runs + 2 {
            let t = Instant::now();
            let body = influx_query(&client, &influx, &db, &c.influxql).await;
            if i >= 2 {
                d.push(t.elapsed());
            } else {
                shape = influx_rows(&body);
            }
        }
        influx_rows_.push((shape, d));
    }
    api_server.shutdown().await;

    // /v1/algo with the series sink on and off.
    let on_dir = tmp.path().join("algo-on");
    let off_dir = tmp.path().join("algo-off");
    let (on_server, on_url, on_key) = algo_server(&on_dir, true, a.concurrency).await;
    let (off_server, off_url, off_key) = algo_server(&off_dir, false, a.concurrency).await;
    let mut algo = vec![Vec::new(); 4];
    let targets = [
        (&on_url, &on_key, "echo"),
        (&off_url, &off_key, "echo"),
        (&on_url, &on_key, "echo_report"),
        (&off_url, &off_key, "echo_report"),
    ];
    let target_url =
        |(url, _, name): (&String, &String, &str)| format!("{url}/v1/algo/{OWNER}/{name}/1.0.0");
    for t in targets {
        load(&client, &target_url(t), t.1, 1000, a.concurrency).await; // warm-up
    }
    for round in 0..a.algo_rounds {
        // Alternate which side goes first.
        let order: [usize; 4] = if round % 2 == 0 {
            [0, 1, 2, 3]
        } else {
            [1, 0, 3, 2]
        };
        for i in order {
            let t = targets[i];
            algo[i].push(
                load(&client, &target_url(t), t.1, a.calls, a.concurrency)
                    .await
                    .throughput,
            );
        }
        eprintln!("/v1/algo round {} of {} done", round + 1, a.algo_rounds);
    }
    on_server.shutdown().await;
    off_server.shutdown().await;
    let algo: Vec<f64> = algo.iter_mut().map(|v| median(v)).collect();

    // Report.
    println!(
        "machine: {cores} cores, load average at start {}; influxd 1.6.7 (Debian) on the same machine",
        loadavg
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "data: {} payloads, {values} metric values ({LONG} 1.0.0: 1 payload/min for 30 d; {WIDE} 1.0.0-1.9.0: 1 payload/10 s each for 24 h; 4 metrics + duration each)\n",
        payloads.len()
    );
    let list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "ingest, median of {} rounds (values/s per round: series store live {}; backfill {}; influxd {})\n",
        a.rounds,
        list(&series_rates),
        list(&backfill_rates),
        list(&influx_rates)
    );
    println!("| ingest | values/s | payloads/s | ratio to influxd | goal |");
    println!("| --- | ---: | ---: | ---: | --- |");
    println!(
        "| series store, ingest_batch (1024), WAL on, one core, clock following the payloads (live) | {series_rate:.0} | {:.0} | {:.2} | ≥ 1,000,000 values/s and > 1 |",
        series_rate / VALUES_PER_PAYLOAD as f64,
        series_rate / influx_rate
    );
    println!(
        "| series store, the same as a backfill (clock at the end of the data) | {backfill_rate:.0} | {:.0} | {:.2} | |",
        backfill_rate / VALUES_PER_PAYLOAD as f64,
        backfill_rate / influx_rate
    );
    println!(
        "| influxd, line protocol /write (5,000 lines, 1 connection) | {influx_rate:.0} | {:.0} | 1 | |",
        influx_rate / VALUES_PER_PAYLOAD as f64
    );

    println!(
        "\nqueries, p50 (p90) of {} runs, ms; ratio = influxd p50 / series p50 (> 1: the store is ahead)\n",
        a.runs
    );
    println!(
        "| query | windows (series store / API / influxd) | store in process | series API over HTTP | influxd InfluxQL | influxd / store | influxd / API | goal |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |");
    for (i, c) in cases.iter().enumerate() {
        let (windows, versions, d) = &query_rows[i];
        let (api_windows, ad) = &api_rows[i];
        let ((iseries, irows), id) = &influx_rows_[i];
        let (sp, ap, ip) = (
            percentile(d.clone(), 0.5),
            percentile(ad.clone(), 0.5),
            percentile(id.clone(), 0.5),
        );
        println!(
            "| {} | {windows} in {versions} / {api_windows} / {irows} in {iseries} | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.2} ({:.2}) | {:.1} | {:.1} | {} |",
            c.label,
            ms(sp),
            ms(percentile(d.clone(), 0.9)),
            ms(ap),
            ms(percentile(ad.clone(), 0.9)),
            ms(ip),
            ms(percentile(id.clone(), 0.9)),
            ip.as_secs_f64() / sp.as_secs_f64(),
            ip.as_secs_f64() / ap.as_secs_f64(),
            if i == 0 { "p50 ≤ 20 ms, > 1" } else { "> 1" },
        );
        eprintln!("  InfluxQL: {}", c.influxql);
    }

    let n = payloads.len() as f64;
    println!("\n| disk | bytes | bytes/payload | ratio to influxd |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| series store dir after a checkpoint ({series_files} files: {}; checkpoint took {:.0} ms) | {series_disk} | {:.1} | {:.2} |",
        listing.join(", "),
        ms(checkpoint),
        series_disk as f64 / n,
        series_disk as f64 / (influx_data + influx_wal) as f64
    );
    println!(
        "| influxd data + wal of the database ({}: {tsm_files} TSM files in {shards} shards, wal {influx_wal} B, waited {:.0} s) | {} | {:.1} | 1 |",
        if compacted {
            "compacted"
        } else {
            "NOT settled after 180 s"
        },
        waited.elapsed().as_secs_f64(),
        influx_data + influx_wal,
        (influx_data + influx_wal) as f64 / n
    );

    println!(
        "\n/v1/algo, Insights on, {} calls per configuration and round, concurrency {}, median of {} rounds\n",
        a.calls, a.concurrency, a.algo_rounds
    );
    println!("| /v1/algo | series sink on, calls/s | off, calls/s | on / off | goal |");
    println!("| --- | ---: | ---: | ---: | --- |");
    println!(
        "| echo | {:.0} | {:.0} | {:.3} | ≥ 0.97 |",
        algo[0],
        algo[1],
        algo[0] / algo[1]
    );
    println!(
        "| echo + 1 reported metric | {:.0} | {:.0} | {:.3} | ≥ 0.97 |",
        algo[2],
        algo[3],
        algo[2] / algo[3]
    );
}
