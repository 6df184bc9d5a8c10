//! `serve --demo`: publishes the bundled example algorithm with Insights enabled, calls it over
//! HTTP like any client would, and prints what to try next. Safe to run again on the same data
//! directory: the algorithm, its version and the demo key are reused.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use insights_runtime::catalog::{AlgorithmSettings, NewAlgorithm, Source, VersionSettings};
use serde_json::{Value, json};

const OWNER: &str = "demo";
const NAME: &str = "credit_card_approval";
const VERSION: &str = "1.0.0";

pub(crate) async fn run(
    server: &insights::serve::RunningServer,
    data_dir: &Path,
) -> anyhow::Result<()> {
    let catalog = server.state.runtime.catalog();
    let source = example_dir()?;
    catalog.upsert(
        OWNER,
        NewAlgorithm {
            name: NAME.into(),
            source: Source {
                path: source.clone(),
                command: vec!["python3".into(), "-u".into(), "src/Algorithm.py".into()],
            },
            settings: AlgorithmSettings::default(),
            details: None,
        },
    )?;
    catalog
        .ensure_version(
            OWNER,
            NAME,
            semver::Version::parse(VERSION).expect("valid"),
            VersionSettings {
                insights_enabled: true,
                insights_include_status: false,
            },
        )
        .await?;
    let key = demo_key(&server.state, data_dir)?;

    let url = server.url();
    let client = reqwest::Client::new();
    let applicants = [
        json!({"income": 52000, "debt": 9000, "age": 34, "late_payments": 0}),
        json!({"income": 31000, "debt": 21000, "age": 22, "late_payments": 3}),
        json!({"income": 87000, "debt": 12000, "age": 45, "late_payments": 1}),
    ];
    println!("\nDemo: calling {OWNER}/{NAME}/{VERSION} (Insights enabled)");
    for applicant in &applicants {
        let response: Value = client
            .post(format!("{url}/v1/algo/{OWNER}/{NAME}/{VERSION}"))
            .header("Authorization", format!("Simple {key}"))
            .json(applicant)
            .send()
            .await
            .context("calling the demo algorithm")?
            .json()
            .await
            .context("reading the demo algorithm's answer")?;
        if let Some(err) = response.get("error") {
            bail!("the demo algorithm failed: {}", err["message"]);
        }
        println!("  {applicant} → {}", response["result"]);
    }

    tokio::spawn(keep_calling(client, url.clone(), key.clone()));

    let data = data_dir.display();
    let (minutes, every) = (GENTLE_FOR.as_secs() / 60, GENTLE_EVERY.as_secs());
    println!(
        "
Insights is serving on {url}. For the next {minutes} minutes the demo keeps calling the
algorithm every {every} seconds with varying applicants, so that its charts have lines that move.
Try:

  # the admin panel: open {url}/admin and sign in with the admin token
  # (in {data}/admin-token, unless INSIGHTS_ADMIN_TOKEN is set)

  # call the algorithm (this key was created for the demo; it is also in {data}/demo-api-key)
  curl -s -X POST {url}/v1/algo/{OWNER}/{NAME} \\
       -H 'Authorization: Simple {key}' -H 'Content-Type: application/json' \\
       -d '{{\"income\": 40000, \"debt\": 15000, \"age\": 29, \"late_payments\": 2}}'

  # the Insights payloads it produced (admin token in {data}/admin-token)
  curl -s '{url}/v1/admin/insights/payloads?algorithm={OWNER}/{NAME}&limit=5' \\
       -H \"Authorization: Bearer $(cat {data}/admin-token)\"

  # risk_score per minute over the last hour, per version (the series API)
  curl -s '{url}/v1/admin/insights/series?algorithm={OWNER}/{NAME}&metric=risk_score&fn=mean&every=1m&from=-1h' \\
       -H \"Authorization: Bearer $(cat {data}/admin-token)\"

  # operational metrics
  curl -s {url}/metrics | grep ^insights_

Press Ctrl-C to stop.
"
    );
    std::io::stdout().flush().ok();
    Ok(())
}

/// How long and how often the demo keeps calling after its first calls.
const GENTLE_FOR: std::time::Duration = std::time::Duration::from_secs(10 * 60);
const GENTLE_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// Calls the demo algorithm every [`GENTLE_EVERY`] for [`GENTLE_FOR`] with applicants that vary
/// (and drift slowly, so risk scores rise and fall). It stops at the first failed call: the
/// server is stopping, or the newcomer changed something; either way there is no one to tell.
async fn keep_calling(client: reqwest::Client, url: String, key: String) {
    let start = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval(GENTLE_EVERY);
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        // xorshift: varied enough for a demo, no dependency.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut i: u64 = 0;
    while start.elapsed() < GENTLE_FOR {
        ticks.tick().await;
        i += 1;
        // A slow swing over about five minutes, on top of the noise.
        let swing = ((i as f64) / 25.0).sin();
        let applicant = json!({
            "income": 25_000 + next(90_000),
            "debt": (8_000.0 + 7_000.0 * swing) as u64 + next(10_000),
            "age": 19 + next(50),
            "late_payments": next(if swing > 0.3 { 5 } else { 3 }),
        });
        let sent = client
            .post(format!("{url}/v1/algo/{OWNER}/{NAME}/{VERSION}"))
            .header("Authorization", format!("Simple {key}"))
            .json(&applicant)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::debug!(status = %r.status(), "the demo stopped calling");
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "the demo stopped calling");
                return;
            }
        }
    }
}

/// The example's source, as an absolute path: `./examples` of the checkout the demo runs in,
/// else the one next to the binary's crate (a binary run from elsewhere).
fn example_dir() -> anyhow::Result<PathBuf> {
    let candidates = [
        crate::config::absolute(Path::new("examples/credit_card_approval"), "the example")?,
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/credit_card_approval"
        )),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("src/Algorithm.py").is_file())
        .context("the bundled example examples/credit_card_approval was not found; run the demo from the root of a checkout of the repository")
}

/// The demo's API key: reused from `<data>/demo-api-key` while it is valid, else created.
fn demo_key(state: &insights_server::AppState, data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("demo-api-key");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let key = text.trim();
        if state.keys.verify(key).is_some() {
            return Ok(key.to_string());
        }
    }
    let created = state
        .keys
        .create("demo")
        .map_err(|e| anyhow::anyhow!("creating the demo API key: {}", e.message))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{}", created.key)?;
    Ok(created.key)
}
