//! The series query API end to end: real worker processes report `risk_score`, the payloads go
//! through the dispatcher into the series store, and every `fn` that `/v1/admin/insights/series`
//! answers is compared with a brute-force computation over the stored payloads of the same
//! windows (read back from `/v1/admin/insights/payloads`). Plus the metric catalog and the
//! errors that name each bad parameter.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, report};
use reqwest::Method;
use serde_json::{Value, json};

/// Window start (Unix seconds) of a payload's `time` (`YYYY-MM-DDTHH:MM:SS.ffffff`, UTC).
fn minute_of(time: &str) -> i64 {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]"
    );
    let t = time::PrimitiveDateTime::parse(time, &format)
        .unwrap()
        .assume_utc()
        .unix_timestamp();
    t - t.rem_euclid(60)
}

fn rfc3339_seconds(t: &str) -> i64 {
    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_function_equals_a_brute_force_computation_over_the_stored_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 2, true).await;
    let key = t.new_key().await;
    // Values k/16: sums of these are exact in binary, so "exact" can be checked with ==.
    const CALLS: usize = 45;
    for i in 0..CALLS {
        let risk = ((i % 15) + 1) as f64 / 16.0;
        let mut input = json!({"reports": [report(&[("risk_score", risk.into())])]});
        if i % 9 == 4 {
            input["error"] = "boom".into();
        }
        let (status, _, body) = t.call(&key, "acme/scorer", input).await;
        assert_eq!(status, 200, "{body}");
    }
    let stored = t
        .wait_payloads("algorithm=acme/scorer&limit=1000", CALLS)
        .await;

    // The series store is written by its own sink: wait until it holds every payload.
    let query = |metric: &str, f: &str| {
        format!(
            "/v1/admin/insights/series?algorithm=acme/scorer&metric={metric}&fn={f}&every=1m&from=-1h&to=now"
        )
    };
    let total = |body: &Value| -> u64 {
        body["series"][0]["points"]
            .as_array()
            .map_or(0, |p| p.iter().map(|p| p["count"].as_u64().unwrap()).sum())
    };
    let mut seen = 0;
    for _ in 0..500 {
        let (s, body) = t
            .admin(Method::GET, &query("risk_score", "count"), None)
            .await;
        assert_eq!(s, 200, "{body}");
        seen = total(&body);
        if seen == CALLS as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(seen, CALLS as u64, "the series store got every payload");

    // Brute force: the stored payloads grouped by minute.
    let mut windows: BTreeMap<i64, Vec<(String, f64)>> = BTreeMap::new();
    for p in &stored {
        let time = p["time"].as_str().unwrap().to_string();
        windows
            .entry(minute_of(&time))
            .or_default()
            .push((time, p["risk_score"].as_f64().unwrap()));
    }
    for f in [
        "mean", "min", "max", "sum", "count", "last", "p50", "p90", "p95", "p99",
    ] {
        let (s, body) = t.admin(Method::GET, &query("risk_score", f), None).await;
        assert_eq!(s, 200, "{f}: {body}");
        assert_eq!(body["fn"], f);
        assert_eq!(body["algorithm"], "acme/scorer");
        let series = body["series"].as_array().unwrap();
        assert_eq!(series.len(), 1, "one version: {body}");
        assert_eq!(series[0]["version"], "1.0.0");
        let points = series[0]["points"].as_array().unwrap();
        assert_eq!(
            points.len(),
            windows.len(),
            "{f}: windows without data are absent"
        );
        for (point, (start, values)) in points.iter().zip(&windows) {
            assert_eq!(rfc3339_seconds(point["time"].as_str().unwrap()), *start);
            assert_eq!(point["count"], values.len(), "{f}");
            let got = point["value"].as_f64().unwrap();
            let mut sorted: Vec<f64> = values.iter().map(|v| v.1).collect();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len() as f64;
            let sum: f64 = sorted.iter().sum();
            let exact = match f {
                "mean" => Some(sum / n),
                "min" => Some(sorted[0]),
                "max" => Some(*sorted.last().unwrap()),
                "sum" => Some(sum),
                "count" => Some(n),
                "last" => Some(values.iter().max_by(|a, b| a.0.cmp(&b.0)).unwrap().1),
                _ => None,
            };
            match exact {
                Some(want) => assert_eq!(got, want, "{f} of {values:?}"),
                None => {
                    // Within the stated 1% of an order statistic around the rank.
                    let q: f64 = f[1..].parse::<f64>().unwrap() / 100.0;
                    let rank = q * (n - 1.0);
                    let (lo, hi) = (sorted[rank.floor() as usize], sorted[rank.ceil() as usize]);
                    assert!(
                        got >= lo * 0.99 && got <= hi * 1.01,
                        "{f} = {got}, exact between {lo} and {hi}: {sorted:?}"
                    );
                }
            }
        }
    }

    // Duration and the derived series: executions and failures per window.
    let failures_expected = (0..CALLS).filter(|i| i % 9 == 4).count() as f64;
    let (_, body) = t
        .admin(Method::GET, &query("insights.failures", "sum"), None)
        .await;
    let failures: f64 = body["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(failures, failures_expected, "{body}");
    let (_, body) = t
        .admin(Method::GET, &query("duration_milliseconds", "count"), None)
        .await;
    assert_eq!(total(&body), CALLS as u64, "{body}");

    // The catalog offers what was seen, per version.
    let (s, body) = t
        .admin(
            Method::GET,
            "/v1/admin/insights/metrics?algorithm=acme/scorer",
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    let metrics: Vec<&str> = body["versions"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["metric"].as_str().unwrap())
        .collect();
    for m in [
        "risk_score",
        "duration_milliseconds",
        "insights.executions",
        "insights.failures",
    ] {
        assert!(metrics.contains(&m), "{m} in {metrics:?}");
    }
    let risk = body["versions"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == "risk_score")
        .unwrap();
    assert_eq!(risk["count"], CALLS);
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_parameter_gets_a_400_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    let base = "/v1/admin/insights/series?algorithm=acme/x&metric=risk_score";
    for (query, field, needle) in [
        (
            "/v1/admin/insights/series?metric=m",
            "algorithm",
            "owner/name",
        ),
        (
            "/v1/admin/insights/series?algorithm=acme&metric=m",
            "algorithm",
            "owner/name",
        ),
        (
            "/v1/admin/insights/series?algorithm=acme/x",
            "metric",
            "required",
        ),
        (&format!("{base}&fn=median") as &str, "fn", "p99"),
        (&format!("{base}&every=5s"), "every", "10s"),
        (&format!("{base}&every=fortnight"), "every", "1m"),
        (&format!("{base}&from=yesterday"), "from", "RFC 3339"),
        (&format!("{base}&to=-1x"), "to", "-15m"),
        (&format!("{base}&from=-1h&to=-2h"), "from", "before"),
        (&format!("{base}&from=-500d"), "from", "400 days"),
        (&format!("{base}&every=10s&from=-30d"), "every", "windows"),
        (&format!("{base}&bucket=1m"), "bucket", "not a parameter"),
    ] {
        let (s, body) = t.admin(Method::GET, query, None).await;
        assert_eq!(s, 400, "{query}: {body}");
        assert_eq!(body["error"]["field"], field, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{query}: {message}");
    }
    // Without the admin token or a session: refused before anything is read.
    let r = t.http.get(format!("{}{base}", t.url)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    t.stop().await;
}
