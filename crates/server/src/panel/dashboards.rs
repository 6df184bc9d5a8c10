//! `/admin/dashboards`: the list of dashboards (stored ones, then the default dashboard of every
//! algorithm with Insights on) and a form for a new one; `/admin/dashboards/{id}`: one
//! dashboard. The page is a frame: `assets/dashboards.js` reads the dashboard from
//! `/v1/admin/dashboards/{id}`, draws its cells with uPlot (vendored, `assets/vendor/uplot/`)
//! over `/v1/admin/insights/series` (tables over `/v1/admin/insights/payloads`), and saves
//! through the same API. The cell editor's form is here: a field for everything a cell holds
//! (kind, query, versions from the catalog, window, display options, thresholds, position), each
//! with an error slot `error-cell-…` where the script puts the API's message about that field.
//! The page holds no secret: the session cookie and the page's CSRF token do the talking.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use insights_series::Function;
use maud::{Markup, html};

use crate::AppState;
use crate::dashboards;

use super::layout::{Nav, Page, html_page, layout, layout_with};

/// A dashboard's id as one path segment.
fn href(id: &str) -> String {
    format!(
        "/admin/dashboards/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    )
}

fn head() -> Markup {
    html! {
        link rel="stylesheet" href="/admin/assets/vendor/uplot/uPlot.min.css";
        script src="/admin/assets/vendor/uplot/uPlot.iife.min.js" defer {}
        script src="/admin/assets/dashboards.js" defer {}
    }
}

pub(super) async fn dashboards_page(
    State(state): State<AppState>,
    Page(signed_in): Page,
) -> Response {
    let (list, error) = match dashboards::all(&state).await {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e.message)),
    };
    let main = html! {
        h1 { "Dashboards" }
        p.form-error id="page-error" role="alert" hidden[error.is_none()] { (error.unwrap_or_default()) }
        p.lead {
            "Charts of what your algorithms report, per version. Every algorithm with Insights on has a default dashboard; "
            "saving a change to it makes it yours."
        }
        section.card aria-labelledby="list-heading" {
            h2 id="list-heading" { "All dashboards" }
            @if list.is_empty() {
                p id="no-dashboards" { "No dashboard yet: switch Insights on for a version, or create one below." }
            } @else {
                div.table-wrap {
                    table id="dashboards" {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Cells" } th scope="col" { "Kind" } th scope="col" { "Updated" } } }
                        tbody {
                            @for d in &list {
                                @let id = d["id"].as_str().unwrap_or_default();
                                tr data-dashboard-id=(id) {
                                    th scope="row" { a href=(href(id)) { (d["name"].as_str().unwrap_or_default()) } }
                                    td { (d["cell_count"].as_u64().unwrap_or_else(|| d["cells"].as_array().map_or(0, |c| c.len() as u64))) }
                                    td { @if d["default"] == true { "default" } @else { "saved" } }
                                    td { (d["updated_at"].as_str().unwrap_or("—")) }
                                }
                            }
                        }
                    }
                }
            }
        }
        section.card aria-labelledby="new-heading" {
            h2 id="new-heading" { "New dashboard" }
            form id="new-dashboard" novalidate {
                label for="dashboard-name" { "Name" }
                input id="dashboard-name" name="name" required maxlength=(dashboards::MAX_NAME) autocomplete="off"
                    aria-describedby="error-name";
                p.field-error id="error-name" hidden {}
                div.actions { button type="submit" id="create-dashboard" { "Create dashboard" } }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout_with("Dashboards", Nav::Dashboards, &signed_in, head(), main),
    )
}

pub(super) async fn dashboard_page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Page(signed_in): Page,
) -> Response {
    let d = match dashboards::one(&state, &id).await {
        Ok(d) => d,
        Err(e) => {
            let main = html! {
                h1 { "Dashboard not found" }
                p.form-error role="alert" { (e.message) }
                p { a href="/admin/dashboards" { "All dashboards" } }
            };
            return html_page(
                e.status,
                layout("Dashboard not found", Nav::Dashboards, &signed_in, main),
            );
        }
    };
    let name = d["name"].as_str().unwrap_or_default().to_string();
    let is_default = d["default"] == true;
    let algorithms = state.runtime.catalog().algorithms();
    // The versions of the algorithms this dashboard shows, for the version filter.
    let shown: BTreeSet<&str> = d["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["query"]["algorithm"].as_str())
        .collect();
    let versions: BTreeSet<String> = algorithms
        .iter()
        .filter(|a| shown.contains(format!("{}/{}", a.owner, a.name).as_str()))
        .flat_map(|a| {
            a.versions
                .iter()
                .map(|v| v.version_info.semantic_version.clone())
        })
        .collect();
    let field = |name: &str| html! { p.field-error id={"error-cell-" (name)} hidden {} };
    let main = html! {
        p.crumbs { a href="/admin/dashboards" { "Dashboards" } }
        h1 id="dashboard-title" { (name) }
        p.form-error id="page-error" role="alert" hidden {}
        @if is_default {
            p.notice id="default-notice" {
                "This default dashboard is computed from the metrics the algorithm reports. "
                "Adding, changing or removing a cell saves it as your own under the same address."
            }
        }
        form.controls id="controls" novalidate {
            div {
                label for="range" { "Time range" }
                select id="range" {
                    @for (value, text) in [("15m", "Last 15 minutes"), ("1h", "Last hour"), ("6h", "Last 6 hours"), ("24h", "Last 24 hours"), ("7d", "Last 7 days"), ("30d", "Last 30 days"), ("custom", "Custom…")] {
                        option value=(value) selected[value == "1h"] { (text) }
                    }
                }
            }
            fieldset id="custom-range" hidden {
                legend { "Custom range (your time zone)" }
                label for="custom-from" { "From" }
                input id="custom-from" type="datetime-local" step="1";
                label for="custom-to" { "To" }
                input id="custom-to" type="datetime-local" step="1";
            }
            div {
                label for="refresh" { "Auto-refresh" }
                select id="refresh" {
                    option value="0" selected { "Off" }
                    option value="5" { "Every 5 s" }
                    option value="30" { "Every 30 s" }
                }
            }
            div {
                label for="version-filter" { "Version" }
                select id="version-filter" {
                    option value="" selected { "As each cell says" }
                    @for v in versions.iter().rev() { option value=(v) { (v) } }
                }
            }
            div.check {
                label.choice for="compare" {
                    input id="compare" type="checkbox";
                    " Compare versions"
                }
            }
            div.actions {
                button type="button" id="refresh-now" { "Refresh" }
                button type="button" id="add-cell" aria-haspopup="dialog" { "Add cell" }
                @if !is_default {
                    button.danger type="button" id="delete-dashboard" { "Delete dashboard" }
                }
            }
        }
        p.hint id="updated" role="status" aria-live="polite" {}
        div.grid id="cells" data-dashboard-id=(id) data-default=(is_default) {}
        p id="no-cells" hidden { "No cell yet: add one." }
        dialog id="cell-dialog" aria-labelledby="cell-dialog-title" {
            form id="cell-form" method="dialog" novalidate {
                h2 id="cell-dialog-title" { "Add cell" }
                div.editor {
                    div.editor-fields {
                        label for="cell-kind" { "Kind" }
                        select id="cell-kind" name="kind" aria-describedby="error-cell-kind" {
                            option value="graph" { "Graph" }
                            option value="single_stat" { "Single Stat" }
                            option value="graph_single_stat" selected { "Graph + Single Stat" }
                            option value="gauge" { "Gauge" }
                            option value="table" { "Table of latest payloads" }
                        }
                        (field("kind"))
                        label for="cell-algorithm" { "Algorithm" }
                        select id="cell-algorithm" name="algorithm" aria-describedby="error-cell-algorithm" {
                            option value="" { "Choose an algorithm" }
                            @for a in &algorithms {
                                @let path = format!("{}/{}", a.owner, a.name);
                                @let published: Vec<&str> = a.versions.iter().map(|v| v.version_info.semantic_version.as_str()).collect();
                                option value=(path) data-versions=(published.join(" ")) { (path) }
                            }
                        }
                        (field("algorithm"))
                        label for="cell-metric" { "Metric" }
                        select id="cell-metric" name="metric" aria-describedby="metric-hint error-cell-metric" {
                            option value="" { "Choose an algorithm first" }
                        }
                        p.hint id="metric-hint" { "The metrics the algorithm reported, with duration, executions and failures. A table may show every key instead." }
                        (field("metric"))
                        div id="fn-field" {
                            label for="cell-fn" { "Function" }
                            select id="cell-fn" name="fn" aria-describedby="error-cell-fn" {
                                @for f in Function::ALL { option value=(f.as_str()) selected[f == Function::Mean] { (f.as_str()) } }
                            }
                            (field("fn"))
                        }
                        label for="cell-title" { "Title" }
                        input id="cell-title" name="title" maxlength=(dashboards::MAX_NAME) autocomplete="off" aria-describedby="error-cell-title";
                        (field("title"))
                        fieldset id="cell-versions" aria-describedby="versions-hint error-cell-versions" {
                            legend { "Versions" }
                            label.choice for="cell-versions-all" {
                                input id="cell-versions-all" type="radio" name="versions_mode" value="all" checked;
                                " All versions"
                            }
                            label.choice for="cell-versions-some" {
                                input id="cell-versions-some" type="radio" name="versions_mode" value="some";
                                " Only these:"
                            }
                            div.version-list id="cell-version-list" {}
                            p.hint id="versions-hint" { "The algorithm's published versions and those it reported from." }
                            (field("versions"))
                        }
                        div id="every-field" {
                            label for="cell-every" { "Points every" }
                            input id="cell-every" name="every" list="cell-durations" placeholder="chosen from the time range" autocomplete="off"
                                aria-describedby="every-hint error-cell-every";
                            p.hint id="every-hint" { "The length of each point's window: 10s or more, such as 30s, 1m, 5m, 1h, 1d." }
                            (field("every"))
                        }
                        div id="window-field" {
                            label for="cell-window" { "Value window" }
                            input id="cell-window" name="window" list="cell-durations" placeholder="as the time range's windows" autocomplete="off"
                                aria-describedby="window-hint error-cell-window";
                            p.hint id="window-hint" { "The value is the latest window of this length: 10s or more, such as 5m, 1h, 1d." }
                            (field("window"))
                        }
                        datalist id="cell-durations" {
                            @for d in ["10s", "30s", "1m", "5m", "15m", "1h", "6h", "1d"] { option value=(d) {} }
                        }
                        details id="cell-display" {
                            summary { "Display" }
                            p.hint id="display-hint" { "For a table, these apply to the chosen metric's column." }
                            div.pair {
                                div {
                                    label for="cell-unit" { "Unit" }
                                    input id="cell-unit" name="unit" maxlength="20" autocomplete="off" placeholder="ms, %, °C" aria-describedby="error-cell-unit";
                                    (field("unit"))
                                }
                                div {
                                    label for="cell-decimals" { "Decimals" }
                                    input id="cell-decimals" name="decimals" type="number" min="0" max="10" step="1" placeholder="2" aria-describedby="error-cell-decimals";
                                    (field("decimals"))
                                }
                                div {
                                    label for="cell-min" { "Minimum" }
                                    input id="cell-min" name="min" type="number" step="any" aria-describedby="minmax-hint error-cell-min";
                                    (field("min"))
                                }
                                div {
                                    label for="cell-max" { "Maximum" }
                                    input id="cell-max" name="max" type="number" step="any" aria-describedby="minmax-hint error-cell-max";
                                    (field("max"))
                                }
                            }
                            p.hint id="minmax-hint" { "A graph's vertical axis; a gauge's ends (a gauge needs both)." }
                            fieldset id="cell-thresholds" aria-describedby="thresholds-hint error-cell-thresholds" {
                                legend { "Thresholds" }
                                p.hint id="thresholds-hint" {
                                    "A value from a threshold up takes its color; list them from the lowest up (at most 10)."
                                }
                                div id="threshold-rows" {}
                                button type="button" id="add-threshold" { "Add threshold" }
                                (field("thresholds"))
                            }
                        }
                        details id="cell-placement" {
                            summary { "Size and place" }
                            div.pair {
                                div {
                                    label for="cell-w" { "Width (columns of 12)" }
                                    input id="cell-w" name="w" type="number" min="1" max="12" step="1" aria-describedby="error-cell-w error-cell-position";
                                    (field("w"))
                                }
                                div {
                                    label for="cell-h" { "Height (rows of 72 px)" }
                                    input id="cell-h" name="h" type="number" min="1" max="24" step="1" aria-describedby="error-cell-h error-cell-position";
                                    (field("h"))
                                }
                                div {
                                    label for="cell-x" { "Column (0 is the left)" }
                                    input id="cell-x" name="x" type="number" min="0" max="11" step="1" aria-describedby="error-cell-x error-cell-position";
                                    (field("x"))
                                }
                                div {
                                    label for="cell-y" { "Row (0 is the top)" }
                                    input id="cell-y" name="y" type="number" min="0" max="1000" step="1" aria-describedby="error-cell-y error-cell-position";
                                    (field("y"))
                                }
                            }
                            (field("position"))
                            p.hint { "Cells may not overlap. On a phone every cell takes the whole width, in order of row, then column." }
                        }
                    }
                    div.editor-preview {
                        h3 { "Preview" }
                        div id="cell-preview" aria-live="polite" {}
                    }
                }
                p.form-error id="cell-form-error" role="alert" hidden {}
                div.actions {
                    button type="submit" id="save-cell" { "Save cell" }
                    button type="button" id="cancel-cell" { "Cancel" }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout_with(&name, Nav::Dashboards, &signed_in, head(), main),
    )
}
