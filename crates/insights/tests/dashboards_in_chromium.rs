//! Dashboards end to end: the API (validation that names the field, default dashboards, a PUT
//! of a default id), and the panel's Dashboards page in a real headless Chromium (Debian's
//! `chromium` and `chromedriver`) against the real server and real probe workers: a dashboard
//! built by hand as a user would, whose chart and single stat must show what the series API
//! answers, and the default dashboard with every cell drawn (at laptop and phone width).
//! Screenshots go to `target/screenshots/`; `laptop.png` is kept in the repository as
//! `docs/screenshots/dashboard.png`, copied by hand.

mod common;

use std::time::Duration;

use common::browser::{Browser, PATIENCE};
use common::{TestServer, report};
use fantoccini::Locator;
use reqwest::Method;
use serde_json::{Value, json};

/// The probe as `acme/scorer` with Insights on, `calls` calls reporting `risk_score`, and the
/// series store holding all of them.
async fn seed(t: &TestServer, key: &str, calls: usize, offset: usize) {
    for i in 0..calls {
        let risk = (((i + offset) % 15) + 1) as f64 / 16.0;
        let mut input = json!({"reports": [report(&[("risk_score", risk.into())])]});
        if (i + offset) % 7 == 3 {
            input["error"] = "boom".into();
        }
        let (status, _, body) = t.call(key, "acme/scorer", input).await;
        assert_eq!(status, 200, "{body}");
    }
    wait_series_count(t, (calls + offset) as u64).await;
}

async fn series(t: &TestServer, metric: &str, f: &str, every: &str) -> Value {
    let (s, body) = t
        .admin(
            Method::GET,
            &format!("/v1/admin/insights/series?algorithm=acme/scorer&metric={metric}&fn={f}&every={every}&from=-1h&to=now"),
            None,
        )
        .await;
    assert_eq!(s, 200, "{body}");
    body
}

/// Waits until the series store holds `n` executions (its sink runs beside the request path).
async fn wait_series_count(t: &TestServer, n: u64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let body = series(t, "insights.executions", "count", "1m").await;
        let seen: u64 = body["series"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["points"].as_array().unwrap())
            .map(|p| p["count"].as_u64().unwrap())
            .sum();
        if seen == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "series store has {seen} of {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_names_every_bad_field_serves_defaults_and_stores_a_default_on_put() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    t.probe("acme", "quiet", 1, false).await;
    let key = t.new_key().await;
    seed(&t, &key, 3, 0).await;

    let (s, list) = t.admin(Method::GET, "/v1/admin/dashboards", None).await;
    assert_eq!(s, 200, "{list}");
    let ids: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["default:acme/scorer"],
        "only algorithms with Insights on"
    );
    let (s, d) = t
        .admin(
            Method::GET,
            "/v1/admin/dashboards/default:acme%2Fscorer",
            None,
        )
        .await;
    assert_eq!(s, 200, "{d}");
    let titles: Vec<&str> = d["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["title"].as_str().unwrap())
        .collect();
    assert_eq!(
        titles,
        [
            "risk_score (mean per minute)",
            "Duration (mean per minute)",
            "Executions per minute",
            "Failures per minute"
        ]
    );
    assert!(
        d["cells"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["kind"] == "graph_single_stat" && c["query"]["versions"] == "all")
    );

    let cell = json!({"title": "Risk", "kind": "graph", "query": {"algorithm": "acme/scorer", "metric": "risk_score", "fn": "mean"}, "position": {"x": 0, "y": 0, "w": 6, "h": 4}});
    let mut bad = cell.clone();
    bad["query"]["fn"] = "average".into();
    let (s, e) = t
        .admin(
            Method::POST,
            "/v1/admin/dashboards",
            Some(json!({"name": "S", "cells": [cell, cell, bad]})),
        )
        .await;
    assert_eq!(s, 400, "{e}");
    assert_eq!(e["error"]["field"], "cells[2].query.fn", "{e}");
    let (s, e) = t
        .admin(
            Method::POST,
            "/v1/admin/dashboards",
            Some(json!({"name": "x".repeat(101)})),
        )
        .await;
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (400, Some("name")),
        "{e}"
    );
    assert!(
        e["error"]["message"].as_str().unwrap().contains("100"),
        "{e}"
    );

    let (s, created) = t
        .admin(
            Method::POST,
            "/v1/admin/dashboards",
            Some(json!({"name": "Mine", "cells": [cell]})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();
    let (s, got) = t
        .admin(Method::GET, &format!("/v1/admin/dashboards/{id}"), None)
        .await;
    assert_eq!((s, &got["cells"]), (200, &created["cells"]));

    // A PUT of the default stores it; it replaces the computed one, and a DELETE brings that back.
    let mut mine = d.clone();
    mine["name"] = "Scorer, mine".into();
    let body = json!({"name": mine["name"], "cells": mine["cells"]});
    let (s, put) = t
        .admin(
            Method::PUT,
            "/v1/admin/dashboards/default:acme/scorer",
            Some(body),
        )
        .await;
    assert_eq!(s, 200, "{put}");
    assert_eq!(put["default"], false);
    let (_, list) = t.admin(Method::GET, "/v1/admin/dashboards", None).await;
    let names: Vec<&str> = list["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Mine", "Scorer, mine"]);
    let (s, _) = t
        .admin(
            Method::DELETE,
            "/v1/admin/dashboards/default:acme/scorer",
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, d) = t
        .admin(
            Method::GET,
            "/v1/admin/dashboards/default:acme/scorer",
            None,
        )
        .await;
    assert_eq!((s, &d["default"]), (200, &json!(true)));
    let (s, _) = t
        .admin(
            Method::DELETE,
            "/v1/admin/dashboards/default:acme/scorer",
            None,
        )
        .await;
    assert_eq!(s, 409, "a computed default cannot be deleted");
    let (s, _) = t
        .admin(
            Method::PUT,
            "/v1/admin/dashboards/nope",
            Some(json!({"name": "n"})),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = t
        .http
        .get(format!("{}/v1/admin/dashboards", t.url))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(s, 401, "no token, no session");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_built_by_hand_shows_the_points_and_the_single_stat_the_api_returns() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    seed(&t, &key, 12, 0).await;
    let b = Browser::open(&t.url, "dashboard-by-hand").await;
    b.sign_in("/admin/dashboards").await;

    b.fill("#dashboard-name", "Scorer").await;
    b.click("#create-dashboard").await;
    b.find("#cells[data-refreshes]").await;
    let id = b
        .find("#cells")
        .await
        .attr("data-dashboard-id")
        .await
        .unwrap()
        .unwrap();
    assert!(b.path().await.ends_with(&id));

    b.click("#add-cell").await;
    b.select("#cell-kind", "graph_single_stat").await;
    b.select("#cell-algorithm", "acme/scorer").await;
    b.find("#cell-metric option[value='risk_score']").await;
    b.select("#cell-metric", "risk_score").await;
    b.select("#cell-fn", "mean").await;
    // The preview draws the cell before it is saved.
    b.find("#cell-preview[data-state='ready'] .uplot").await;
    b.find("#cell-preview .stat[data-value]").await;
    b.screenshot("editor").await;
    b.click("#save-cell").await;

    let cell = ".cell[data-index='0'][data-state='ready']";
    b.find(&format!("{cell} .uplot canvas")).await;
    let (s, saved) = t
        .admin(Method::GET, &format!("/v1/admin/dashboards/{id}"), None)
        .await;
    assert_eq!(s, 200, "{saved}");
    let c = &saved["cells"][0];
    assert_eq!(
        (
            c["kind"].as_str(),
            c["query"]["metric"].as_str(),
            c["query"]["algorithm"].as_str()
        ),
        (
            Some("graph_single_stat"),
            Some("risk_score"),
            Some("acme/scorer")
        ),
        "{saved}"
    );

    // More calls; auto-refresh brings them in.
    seed(&t, &key, 9, 12).await;
    b.select("#refresh", "5").await;
    let total = format!(
        "const tds = [...document.querySelectorAll(\"{cell} td[data-count]\")];
         const n = tds.reduce((n, td) => n + Number(td.dataset.count), 0);
         return n === 21 ? n : null;"
    );
    b.wait_js("the table view to count 21 executions", &total)
        .await;
    let every = b
        .find(cell)
        .await
        .attr("data-every")
        .await
        .unwrap()
        .unwrap();
    let api = series(&t, "risk_score", "mean", &every).await;
    let points = api["series"][0]["points"].as_array().unwrap();
    // The chart has every point of the API's answer: uPlot's data and the table view.
    let shown = b
        .c
        .execute(
            &format!("return [...document.querySelectorAll(\"{cell} td[data-value]\")].map(td => Number(td.dataset.value));"),
            vec![],
        )
        .await
        .unwrap();
    let expected: Vec<f64> = points
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert_eq!(shown, json!(expected));
    let last = *expected.last().unwrap();
    let stat = b.find(&format!("{cell} .stat[data-version='1.0.0']")).await;
    let raw: f64 = stat
        .attr("data-value")
        .await
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(raw, last, "the single stat is the API's latest window");
    assert_eq!(
        stat.find(Locator::Css(".stat-value"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        format!("{last:.2}")
    );
    let label = b
        .find(&format!("{cell} .chart[role='img']"))
        .await
        .attr("aria-label")
        .await
        .unwrap()
        .unwrap();
    assert!(
        label.contains("risk_score") && label.contains(&format!("{} point", points.len())),
        "{label}"
    );
    // uPlot's element styles (set through the CSSOM) are not blocked by the CSP.
    let width =
        b.c.execute(
            &format!(
                "return document.querySelector(\"{cell} .u-over\").getBoundingClientRect().width;"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert!(width.as_f64().unwrap() > 100.0, "{width}");
    b.click(&format!("{cell} details summary")).await;
    b.screenshot("dashboard").await;
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_dashboard_of_an_algorithm_renders_every_cell_also_at_phone_width() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    seed(&t, &key, 10, 0).await;
    t.publish("acme", "scorer", json!({"insights_enabled": true}))
        .await;
    seed(&t, &key, 6, 10).await;
    let (_, d) = t
        .admin(
            Method::GET,
            "/v1/admin/dashboards/default:acme/scorer",
            None,
        )
        .await;
    let n = d["cells"].as_array().unwrap().len();
    assert_eq!(n, 4, "{d}");

    let b = Browser::open(&t.url, "default-dashboard").await;
    b.sign_in("/admin/dashboards").await;
    b.click("#dashboards a").await;
    let all_drawn = format!(
        "const cells = [...document.querySelectorAll('.cell')];
         return cells.length === {n} && cells.every(c => c.dataset.state === 'ready' && c.querySelector('.uplot canvas') && c.querySelector('.stat[data-value]')) ? cells.length : null;"
    );
    b.wait_js("every default cell drawn", &all_drawn).await;
    // Versions overlaid: two lines, each named in the legend.
    b.click("#compare").await;
    b.wait_js(
        "one stat per version",
        "return document.querySelectorAll(\".cell[data-index='0'][data-state='ready'] .stat[data-value]\").length === 2 || null;",
    )
    .await;
    // Kept in the repository as docs/screenshots/dashboard.png (copied by hand, like the other
    // README screenshots: a test run never changes tracked files).
    b.screenshot("laptop").await;

    b.c.set_window_size(390, 844).await.unwrap();
    b.wait_js(
        "one column at phone width",
        "const cs = [...document.querySelectorAll('.cell')];
         return cs.every(c => Math.abs(c.getBoundingClientRect().width - cs[0].getBoundingClientRect().width) < 2)
           && document.documentElement.scrollWidth <= window.innerWidth || null;",
    )
    .await;
    b.screenshot("phone").await;
    b.close().await;
    t.stop().await;
}
