//! What the benchmark programs that call `/v1/algo` share: the echo worker, and the echo
//! algorithms registered on a server. Each program includes it with `#[path]`.

use std::path::{Path, PathBuf};

use serde_json::json;

/// The `echo_worker` example, built beside the benchmark (its script builds both).
pub(crate) fn echo_worker() -> PathBuf {
    let p = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .join("echo_worker");
    assert!(
        p.exists(),
        "build the echo_worker example first (the benchmark's script does)"
    );
    p
}

/// Registers `owner/echo` and `owner/echo_report` (which reports one metric per call) on the
/// server at `url`, in a source directory under `dir`, with `concurrency` workers each, and
/// publishes one version per entry of `insights` (1.0.0, 1.1.0, … with Insights on or off);
/// answers a new API key.
pub(crate) async fn echo_algorithms(
    client: &reqwest::Client,
    url: &str,
    admin_token: &str,
    owner: &str,
    dir: &Path,
    concurrency: usize,
    insights: &[bool],
) -> String {
    let admin = |path: &str, body: serde_json::Value| {
        client
            .post(format!("{url}{path}"))
            .bearer_auth(admin_token)
            .json(&body)
            .send()
    };
    let src = dir.join("src");
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
            &format!("/v1/algorithms/{owner}"),
            json!({"name": name, "source": {"path": src, "command": command}, "settings": {"pool_size": concurrency}}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        for &on in insights {
            let r = admin(
                &format!("/v1/algorithms/{owner}/{name}/versions"),
                json!({"version_info": {"version_type": "minor"}, "settings": {"insights_enabled": on}}),
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
    key["key"].as_str().unwrap().to_string()
}
