//! Dashboards end to end: the API (validation that names the field, default dashboards, a PUT
//! of a default id), and the panel's Dashboards page in a real headless Chromium (Debian's
//! `chromium` and `chromedriver`) against the real server and real probe workers:
//!
//! - a dashboard built by hand as a user would, whose chart and single stat must show what the
//!   series API answers, and the default dashboard with every cell drawn (laptop and phone width);
//! - a gauge made in the cell editor with min/max, a unit, decimals, a window and two
//!   thresholds (the API's refusal of thresholds out of order shown next to the threshold), whose
//!   display options the API then returns exactly, and which shows the API's latest value in
//!   the color of the threshold it crossed;
//! - a table cell showing exactly the payloads `/v1/admin/insights/payloads` returns, newest
//!   first, and the newer ones after a refresh;
//! - a cell edited down to one version of the catalog, a window length, min/max and a
//!   threshold, whose chart then holds only that version's series, as the series API answers.
//!
//! Screenshots go to `target/screenshots/`; `default-dashboard-laptop.png` is kept in the
//! repository as `docs/screenshots/dashboard.png`, `gauge-editor-error.png` and `gauge-gauge.png` as
//! `docs/screenshots/dashboard-editor.png` and `dashboard-gauge.png`, copied by hand (a test
//! run never changes tracked files).

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

/// Calls the probe once per value, each reporting `temperature`; waits until the series store
/// holds every call so far (`calls` counts them across the test).
async fn temperatures(t: &TestServer, key: &str, values: &[f64], calls: &mut u64) {
    for v in values {
        let input = json!({"reports": [report(&[("temperature", json!(v))])]});
        let (status, _, body) = t.call(key, "acme/scorer", input).await;
        assert_eq!(status, 200, "{body}");
    }
    *calls += values.len() as u64;
    wait_series_count(t, *calls).await;
}

/// Sets a color input as its picker does (the picker is a native window WebDriver cannot drive).
async fn set_color(b: &Browser, css: &str, color: &str) {
    let v =
        b.c.execute(
            "const e = document.querySelector(arguments[0]);
         e.value = arguments[1];
         e.dispatchEvent(new Event('input', {bubbles: true}));
         e.dispatchEvent(new Event('change', {bubbles: true}));
         return e.value;",
            vec![json!(css), json!(color)],
        )
        .await
        .unwrap();
    assert_eq!(v, json!(color), "{css}");
}

/// A new, empty dashboard made on the list page; answers its id.
async fn new_dashboard(b: &Browser, name: &str) -> String {
    b.fill("#dashboard-name", name).await;
    b.click("#create-dashboard").await;
    b.find("#cells[data-refreshes]").await;
    b.find("#cells")
        .await
        .attr("data-dashboard-id")
        .await
        .unwrap()
        .unwrap()
}

async fn value_of(b: &Browser, css: &str) -> String {
    b.on(css, async |e| e.prop("value").await).await.unwrap()
}

async fn checked(b: &Browser, css: &str) -> bool {
    b.on(css, async |e| e.prop("checked").await)
        .await
        .as_deref()
        == Some("true")
}

/// What the gauge of the first cell shows, once its value is `value`.
async fn gauge_showing(b: &Browser, value: f64) -> Value {
    b.wait_js(
        &format!("the gauge to show {value}"),
        &format!(
            "const g = document.querySelector(\".cell[data-index='0'][data-state='ready'] .stat-gauge\");
             if (!g || Number(g.dataset.value) !== {value}) return null;
             const m = g.querySelector('[role=meter]'), text = g.querySelector('text.gauge-value');
             return {{color: g.dataset.color, fill: getComputedStyle(text).fill, text: text.textContent,
                      label: m.getAttribute('aria-label'), valuetext: m.getAttribute('aria-valuetext'),
                      now: m.getAttribute('aria-valuenow'), min: m.getAttribute('aria-valuemin'),
                      max: m.getAttribute('aria-valuemax'), bar: g.querySelector('.gauge-bar')?.getAttribute('stroke') ?? null}};"
        ),
    )
    .await
}

/// The latest value of `temperature` (fn `last`) per the series API, in windows of `every`.
async fn latest_temperature(t: &TestServer, every: &str) -> f64 {
    let api = series(t, "temperature", "last", every).await;
    let points = api["series"][0]["points"].as_array().unwrap();
    points.last().unwrap()["value"].as_f64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gauge_made_in_the_editor_keeps_its_display_options_and_shows_the_api_value_in_its_threshold_color()
 {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    let mut calls = 0;
    temperatures(&t, &key, &[18.5, 21.37], &mut calls).await;
    let b = Browser::open(&t.url, "gauge").await;
    b.sign_in("/admin/dashboards").await;
    let id = new_dashboard(&b, "Plant").await;

    b.click("#add-cell").await;
    b.find("#cell-dialog[data-ready='new']").await;
    b.select("#cell-kind", "gauge").await;
    b.select("#cell-algorithm", "acme/scorer").await;
    b.find("#cell-metric option[value='temperature']").await;
    b.select("#cell-metric", "temperature").await;
    b.select("#cell-fn", "last").await;
    b.fill("#cell-title", "Temperature").await;
    b.fill("#cell-window", "1h").await;
    // A gauge opens its display options itself: it cannot be drawn without min and max.
    assert!(b.displayed("#cell-min").await);
    b.fill("#cell-unit", "°C").await;
    b.fill("#cell-decimals", "1").await;
    b.fill("#cell-min", "-10").await;
    b.fill("#cell-max", "50").await;
    b.click("#add-threshold").await;
    b.fill("#cell-threshold-0-value", "30").await;
    set_color(&b, "#cell-threshold-0-color", "#e0a000").await;
    b.click("#add-threshold").await;
    // Below the first one: the API refuses it, and the editor says so next to that threshold.
    b.fill("#cell-threshold-1-value", "25").await;
    set_color(&b, "#cell-threshold-1-color", "#b3261e").await;
    assert_eq!(b.unlabelled_controls().await, Vec::<Value>::new());
    b.click("#save-cell").await;
    let said = b
        .wait_text("#error-cell-threshold-1", |s| !s.is_empty())
        .await;
    assert!(
        said.contains("above the value of the threshold before it"),
        "{said}"
    );
    b.find("#cell-preview[data-state='ready'] [role=meter]")
        .await;
    b.screenshot("editor-error").await;
    assert_eq!(
        b.find("#cell-threshold-1-value")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    let (_, d) = t
        .admin(Method::GET, &format!("/v1/admin/dashboards/{id}"), None)
        .await;
    assert_eq!(d["cells"], json!([]), "nothing was saved");
    b.fill("#cell-threshold-1-value", "40").await;
    assert!(
        !b.displayed("#error-cell-threshold-1").await,
        "the error goes once the value is changed"
    );
    // The preview draws the gauge as it will be: the latest value, below both thresholds.
    b.find("#cell-preview[data-state='ready'] [role=meter][aria-valuetext='21.4 °C']")
        .await;
    b.screenshot("editor").await;
    b.click("#save-cell").await;
    b.find(".cell[data-index='0'][data-state='ready'] .stat-gauge")
        .await;
    assert!(!b.displayed("#cell-dialog").await);

    let (s, d) = t
        .admin(Method::GET, &format!("/v1/admin/dashboards/{id}"), None)
        .await;
    assert_eq!(s, 200, "{d}");
    let cell = &d["cells"][0];
    assert_eq!(
        cell["display"],
        json!({
            "thresholds": [{"value": 30.0, "color": "#e0a000"}, {"value": 40.0, "color": "#b3261e"}],
            "min": -10.0, "max": 50.0, "unit": "°C", "decimals": 1,
        }),
        "{d}"
    );
    assert_eq!(
        (&cell["kind"], &cell["title"], &cell["query"]),
        (
            &json!("gauge"),
            &json!("Temperature"),
            &json!({"algorithm": "acme/scorer", "metric": "temperature", "fn": "last", "versions": "all", "window": "1h"})
        ),
        "{d}"
    );
    let every = b
        .find(".cell[data-index='0']")
        .await
        .attr("data-every")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(every, "1h", "the gauge's value is over its window");

    // Below the thresholds, then past the first, then past the second: each time the gauge
    // shows the API's value with the unit and one decimal, in the color of the threshold.
    for (reading, color, fill) in [
        (None, "", "rgb(29, 36, 51)"),
        (Some(33.46), "#e0a000", "rgb(224, 160, 0)"),
        (Some(42.06), "#b3261e", "rgb(179, 38, 30)"),
    ] {
        if let Some(r) = reading {
            temperatures(&t, &key, &[r - 1.0, r], &mut calls).await;
            b.click("#refresh-now").await;
        }
        let v = latest_temperature(&t, &every).await;
        assert_eq!(v, reading.unwrap_or(21.37), "the API's latest value");
        let g = gauge_showing(&b, v).await;
        let text = format!("{v:.1} °C");
        assert_eq!(g["text"], json!(text), "{g}");
        assert_eq!(g["valuetext"], json!(text), "{g}");
        assert_eq!(g["color"], json!(color), "{g}");
        assert_eq!(g["fill"], json!(fill), "{g}");
        assert_eq!(
            g["bar"],
            json!(if color.is_empty() { "#2753c9" } else { color }),
            "{g}"
        );
        assert_eq!(g["label"], json!("Temperature, version 1.0.0"), "{g}");
        assert_eq!((&g["min"], &g["max"]), (&json!("-10"), &json!("50")), "{g}");
        assert_eq!(g["now"], json!(v.to_string()), "{g}");
    }
    b.screenshot("gauge").await;

    // At phone width the gauge and the editor fit the screen.
    b.c.set_window_size(390, 844).await.unwrap();
    b.wait_js(
        "the gauge within a phone's width",
        "const r = document.querySelector('.stat-gauge').getBoundingClientRect();
         return r.width > 150 && r.right <= window.innerWidth
           && document.documentElement.scrollWidth <= window.innerWidth || null;",
    )
    .await;
    b.screenshot("phone").await;

    // Editing the cell loads every value back.
    b.click(".cell[data-index='0'] .edit-cell").await;
    b.find("#cell-dialog[data-ready='0']").await;
    b.wait_js(
        "the editor within a phone's width",
        "const d = document.getElementById('cell-dialog');
         return d.getBoundingClientRect().right <= window.innerWidth && d.scrollWidth <= d.clientWidth || null;",
    )
    .await;
    b.screenshot("phone-editor").await;
    for (css, want) in [
        ("#cell-kind", "gauge"),
        ("#cell-algorithm", "acme/scorer"),
        ("#cell-metric", "temperature"),
        ("#cell-fn", "last"),
        ("#cell-title", "Temperature"),
        ("#cell-window", "1h"),
        ("#cell-unit", "°C"),
        ("#cell-decimals", "1"),
        ("#cell-min", "-10"),
        ("#cell-max", "50"),
        ("#cell-threshold-0-value", "30"),
        ("#cell-threshold-0-color", "#e0a000"),
        ("#cell-threshold-1-value", "40"),
        ("#cell-threshold-1-color", "#b3261e"),
        ("#cell-x", "0"),
        ("#cell-y", "0"),
        ("#cell-w", "6"),
        ("#cell-h", "4"),
    ] {
        assert_eq!(value_of(&b, css).await, want, "{css}");
    }
    assert!(checked(&b, "#cell-versions-all").await);
    b.click("#cancel-cell").await;
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_cell_shows_the_latest_payloads_the_api_returns() {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    let call = |i: usize| json!({"reports": [report(&[("risk_score", json!((i % 15 + 1) as f64 / 16.0)), ("approved", json!(i.is_multiple_of(2)))])]});
    for i in 0..12 {
        let (s, _, body) = t.call(&key, "acme/scorer", call(i)).await;
        assert_eq!(s, 200, "{body}");
    }
    t.wait_payloads("algorithm=acme/scorer", 12).await;
    let b = Browser::open(&t.url, "table").await;
    b.sign_in("/admin/dashboards").await;
    let id = new_dashboard(&b, "Payloads").await;
    b.click("#add-cell").await;
    b.find("#cell-dialog[data-ready='new']").await;
    b.select("#cell-kind", "table").await;
    b.select("#cell-algorithm", "acme/scorer").await;
    b.find("#cell-metric option[value='risk_score']").await;
    b.select("#cell-metric", "").await;
    b.click("#cell-placement summary").await;
    b.fill("#cell-w", "12").await;
    b.find("#cell-preview[data-state='ready'] table.payloads")
        .await;
    b.click("#save-cell").await;
    let (_, d) = t
        .admin(Method::GET, &format!("/v1/admin/dashboards/{id}"), None)
        .await;
    assert_eq!(
        (
            &d["cells"][0]["kind"],
            &d["cells"][0]["query"],
            &d["cells"][0]["position"]
        ),
        (
            &json!("table"),
            &json!({"algorithm": "acme/scorer", "metric": null, "fn": "mean", "versions": "all"}),
            &json!({"x": 0, "y": 0, "w": 12, "h": 4})
        ),
        "{d}"
    );

    let cell = ".cell[data-index='0'][data-state='ready'] table.payloads";
    let rows_script = format!(
        "return [...document.querySelectorAll(\"{cell} tbody tr\")].map(tr =>
           Object.fromEntries([...tr.children].map(c => [c.dataset.key, [c.dataset.value, c.textContent]])));"
    );
    let same_as_api = async |newest: Option<&str>| {
        let rows = b
            .wait_js(
                "the table to show the newest payload",
                &format!(
                    "const rows = (() => {{ {rows_script} }})();
                     return rows.length && (!{newest:?} || rows[0].request_id?.[0] === JSON.stringify({newest:?})) ? rows : null;",
                    newest = newest.unwrap_or("")
                ),
            )
            .await;
        let api = t.payloads("algorithm=acme/scorer&limit=10").await;
        let rows = rows.as_array().unwrap();
        assert_eq!(rows.len(), api.len(), "{rows:?}");
        assert_eq!(api.len(), 10, "the table shows the latest 10");
        for (row, p) in rows.iter().zip(&api) {
            for k in [
                "time",
                "algorithm_version",
                "risk_score",
                "approved",
                "duration_milliseconds",
                "request_id",
            ] {
                let shown: Value = serde_json::from_str(row[k][0].as_str().unwrap()).unwrap();
                assert_eq!(shown, p[k], "{k} of {p}");
            }
            assert_eq!(
                row["risk_score"][1].as_str().unwrap(),
                p["risk_score"].to_string(),
                "the value as text"
            );
        }
        api
    };
    let first = same_as_api(None).await;
    let headers =
        b.c.execute(
            &format!(
                "return [...document.querySelectorAll(\"{cell} thead th\")].map(th => th.textContent);"
            ),
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        headers,
        json!([
            "time",
            "version",
            "risk_score",
            "approved",
            "duration_milliseconds",
            "request_id"
        ])
    );

    // Two more calls: after a refresh the table shows them first.
    let mut newest = String::new();
    for i in 12..14 {
        let (s, rid, body) = t.call(&key, "acme/scorer", call(i)).await;
        assert_eq!(s, 200, "{body}");
        newest = rid.unwrap();
    }
    t.wait_payloads("algorithm=acme/scorer", 14).await;
    b.click("#refresh-now").await;
    let second = same_as_api(Some(&newest)).await;
    assert_eq!(second[2], first[0], "the older ones moved down");
    b.screenshot("table").await;

    // A second cell placed over the table: the API refuses the overlap, next to the placement.
    b.click("#add-cell").await;
    b.find("#cell-dialog[data-ready='new']").await;
    b.find("#cell-metric option[value='risk_score']").await;
    b.select("#cell-metric", "risk_score").await;
    b.click("#cell-placement summary").await;
    assert_eq!(
        value_of(&b, "#cell-y").await,
        "4",
        "offered below the table"
    );
    b.fill("#cell-y", "2").await;
    b.click("#save-cell").await;
    let said = b.wait_text("#error-cell-position", |s| !s.is_empty()).await;
    assert!(
        said.contains(
            r#"overlaps cells[0] ("Latest payloads of acme/scorer", at x 0, y 0, w 12, h 4)"#
        ),
        "{said}"
    );
    b.fill("#cell-y", "4").await;
    assert!(!b.displayed("#error-cell-position").await);
    b.click("#save-cell").await;
    b.find(".cell[data-index='1'][data-state='ready'] .uplot")
        .await;
    b.close().await;
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn editing_a_cell_restricts_it_to_one_version_and_a_window_and_the_chart_shows_only_that_version()
 {
    let dir = tempfile::tempdir().unwrap();
    let t = TestServer::start(dir.path()).await;
    t.probe("acme", "scorer", 1, true).await;
    let key = t.new_key().await;
    seed(&t, &key, 8, 0).await;
    t.publish("acme", "scorer", json!({"insights_enabled": true}))
        .await;
    seed(&t, &key, 6, 8).await;
    let cell = json!({"title": "Risk", "kind": "graph", "query": {"algorithm": "acme/scorer", "metric": "risk_score", "fn": "mean"}, "position": {"x": 0, "y": 0, "w": 12, "h": 4}});
    let (s, created) = t
        .admin(
            Method::POST,
            "/v1/admin/dashboards",
            Some(json!({"name": "Versions", "cells": [cell]})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let id = created["id"].as_str().unwrap();

    let b = Browser::open(&t.url, "versions").await;
    b.sign_in(&format!("/admin/dashboards/{id}")).await;
    let chart = ".cell[data-index='0'][data-state='ready'] .chart";
    b.find(&format!("{chart}[data-versions='1.0.0 1.1.0']"))
        .await;

    b.click(".cell[data-index='0'] .edit-cell").await;
    b.find("#cell-dialog[data-ready='0']").await;
    for (css, want) in [
        ("#cell-kind", "graph"),
        ("#cell-metric", "risk_score"),
        ("#cell-fn", "mean"),
        ("#cell-title", "Risk"),
        ("#cell-every", ""),
        ("#cell-w", "12"),
        ("#cell-h", "4"),
    ] {
        assert_eq!(value_of(&b, css).await, want, "{css}");
    }
    assert!(checked(&b, "#cell-versions-all").await);
    // The versions offered are the catalog's.
    let offered =
        b.c.execute(
            "return [...document.querySelectorAll('#cell-version-list input')].map(i => i.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(offered, json!(["1.1.0", "1.0.0"]));
    // "Only these" with none ticked: the API refuses it, next to the versions.
    b.click("#cell-versions-some").await;
    b.click("#save-cell").await;
    let said = b.wait_text("#error-cell-versions", |s| !s.is_empty()).await;
    assert!(said.contains("1 to 20 versions"), "{said}");
    b.click("#cell-version-list input[value='1.0.0']").await;
    assert!(
        !b.displayed("#error-cell-versions").await,
        "the error goes once a version is ticked"
    );
    // A window length the API cannot read: its error (a parse error, one path) goes next to it.
    b.fill("#cell-every", "1x").await;
    b.click("#save-cell").await;
    let said = b.wait_text("#error-cell-every", |s| !s.is_empty()).await;
    assert!(
        said.contains("unit") && !said.starts_with("cells["),
        "{said}"
    );
    assert_eq!(
        b.find("#cell-every")
            .await
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    b.fill("#cell-every", "1m").await;
    // The vertical axis from 0 to 1, with a line at 0.5.
    b.click("#cell-display summary").await;
    b.fill("#cell-min", "0").await;
    b.fill("#cell-max", "1").await;
    b.click("#add-threshold").await;
    b.fill("#cell-threshold-0-value", "0.5").await;
    b.find("#cell-preview[data-state='ready'][data-every='1m'] .chart[data-versions='1.0.0']")
        .await;
    b.click("#save-cell").await;
    b.find(
        ".cell[data-index='0'][data-every='1m'][data-state='ready'] .chart[data-versions='1.0.0']",
    )
    .await;

    let (_, d) = t
        .admin(Method::GET, &format!("/v1/admin/dashboards/{id}"), None)
        .await;
    let saved = &d["cells"][0];
    assert_eq!(
        saved["query"],
        json!({"algorithm": "acme/scorer", "metric": "risk_score", "fn": "mean", "versions": ["1.0.0"], "every": "1m"}),
        "{d}"
    );
    assert_eq!(
        (&saved["title"], &saved["kind"], &saved["position"]),
        (&cell["title"], &cell["kind"], &cell["position"]),
        "the rest is as it was"
    );
    assert_eq!(
        saved["display"],
        json!({"thresholds": [{"value": 0.5, "color": "#e0a000"}], "min": 0.0, "max": 1.0}),
        "{d}"
    );

    // The chart holds exactly the API's series of that version: its legend, its table view.
    let (s, api) = t
        .admin(
            Method::GET,
            "/v1/admin/insights/series?algorithm=acme/scorer&metric=risk_score&fn=mean&every=1m&from=-1h&to=now&version=1.0.0",
            None,
        )
        .await;
    assert_eq!(s, 200, "{api}");
    let expected: Vec<f64> = api["series"][0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    assert!(!expected.is_empty());
    b.find(".cell[data-index='0'] .chart[data-y-min]").await;
    let shown =
        b.c.execute(
            "const c = document.querySelector(\".cell[data-index='0']\");
         return {values: [...c.querySelectorAll('td[data-value]')].map(td => Number(td.dataset.value)),
                 versions: [...new Set([...c.querySelectorAll('[data-version]')].map(e => e.dataset.version))],
                 legend: [...c.querySelectorAll('.u-legend .u-series')].map(s => s.textContent.trim()).filter(Boolean),
                 label: c.querySelector('.chart').getAttribute('aria-label'),
                 y: [c.querySelector('.chart').dataset.yMin, c.querySelector('.chart').dataset.yMax],
                 thresholds: c.querySelector('.chart').dataset.thresholds};",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(shown["values"], json!(expected), "{shown}");
    assert_eq!(shown["versions"], json!(["1.0.0"]), "{shown}");
    assert!(
        shown["legend"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| !l.as_str().unwrap().contains("1.1.0"))
            && shown["legend"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l.as_str().unwrap().contains("1.0.0")),
        "{shown}"
    );
    assert!(
        shown["label"]
            .as_str()
            .unwrap()
            .contains("1 version (1.0.0)"),
        "{shown}"
    );

    assert_eq!(shown["y"], json!(["0", "1"]), "{shown}");
    assert_eq!(shown["thresholds"], json!("0.5 #e0a000"), "{shown}");
    b.screenshot("restricted").await;

    // Opened again, the editor holds what was saved.
    b.click(".cell[data-index='0'] .edit-cell").await;
    b.find("#cell-dialog[data-ready='0']").await;
    assert!(checked(&b, "#cell-versions-some").await);
    assert!(checked(&b, "#cell-version-list input[value='1.0.0']").await);
    assert!(!checked(&b, "#cell-version-list input[value='1.1.0']").await);
    assert_eq!(value_of(&b, "#cell-every").await, "1m");
    assert_eq!(value_of(&b, "#cell-threshold-0-value").await, "0.5");
    b.click("#cancel-cell").await;
    b.close().await;
    t.stop().await;
}
