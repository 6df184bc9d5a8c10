//! `/admin/algorithms`: every version with its Insights switch and counts, and a version's
//! latest payloads as a table.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights_store::{PayloadQuery, PayloadScope};
use maud::html;

use crate::AppState;
use insights_payload::keys;

use super::layout::{Nav, Page, html_page, layout};

/// Payloads shown on a version's page.
const PAYLOADS_SHOWN: usize = 50;

pub(super) async fn algorithms_page(
    State(state): State<AppState>,
    Page(signed_in): Page,
) -> Response {
    let algorithms = state.runtime.catalog().algorithms();
    let counts = state.runtime.call_counts();
    let main = html! {
        h1 { "Algorithms" }
        p.lead { "Insights is switched on or off per version. Calls and payloads are counted since the server started." }
        @if algorithms.is_empty() {
            p { "No algorithm is registered yet. Register one with " code { "POST /v1/algorithms/{owner}" } " or in the config file." }
        }
        @for a in &algorithms {
            section.card {
                h2 { (a.owner) "/" (a.name) }
                @if a.versions.is_empty() {
                    p { "No version is published yet." }
                } @else {
                    div.table-wrap {
                        table {
                            thead { tr { th scope="col" { "Version" } th scope="col" { "Published" } th scope="col" { "Insights" } th scope="col" { "Calls" } th scope="col" { "Payloads" } th scope="col" { span.visually-hidden { "Latest payloads" } } } }
                            tbody {
                                @for v in a.versions.iter().rev() {
                                    @let version = &v.version_info.semantic_version;
                                    @let c = counts.get(&(a.owner.clone(), a.name.clone(), version.clone())).copied().unwrap_or_default();
                                    @let id = format!("insights-{}-{}-{}", a.owner, a.name, version);
                                    tr {
                                        th scope="row" { (version) }
                                        td { (v.created_at) }
                                        td {
                                            label.switch for=(id) {
                                                input type="checkbox" role="switch" id=(id)
                                                    data-algorithm=(format!("{}/{}", a.owner, a.name)) data-version=(version)
                                                    checked[v.settings.insights_enabled];
                                                span.visually-hidden { "Insights for " (a.owner) "/" (a.name) " " (version) }
                                            }
                                        }
                                        td.num { (c.calls) }
                                        td.num { (c.payloads) }
                                        td { a href=(format!("/admin/algorithms/{}/{}/versions/{}", a.owner, a.name, version)) { "Latest payloads" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.form-error id="page-error" role="alert" hidden {}
    };
    html_page(
        StatusCode::OK,
        layout("Algorithms", Nav::Algorithms, &signed_in, main),
    )
}

/// Keys every payload has; the table shows them first (time, request, duration) or not at all
/// (the rest repeat the page's title).
const PAYLOAD_IDENTITY_KEYS: [&str; 4] = [
    keys::ALGORITHM_NAME,
    keys::ALGORITHM_OWNER,
    keys::ALGORITHM_VERSION,
    keys::SESSION_ID,
];

pub(super) async fn version_page(
    State(state): State<AppState>,
    Path((owner, name, version)): Path<(String, String, String)>,
    Page(signed_in): Page,
) -> Response {
    let q = PayloadQuery {
        scope: PayloadScope::Version {
            owner: owner.clone(),
            name: name.clone(),
            version: version.clone(),
        },
        limit: PAYLOADS_SHOWN,
    };
    let store = state.store.clone();
    let rows = match tokio::task::spawn_blocking(move || store.payloads(&q)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return crate::ApiError::from(e).into_response(),
        Err(e) => return crate::ApiError::internal(e).into_response(),
    };
    let payloads: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    // Columns: time, request, duration, then every metric in first-seen order.
    let mut columns: Vec<String> = [keys::TIME, keys::REQUEST_ID, keys::DURATION_MILLISECONDS]
        .map(String::from)
        .to_vec();
    for p in &payloads {
        for k in p.keys() {
            if !PAYLOAD_IDENTITY_KEYS.contains(&k.as_str()) && !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let main = html! {
        p { a href="/admin/algorithms" { "← Algorithms" } }
        h1 { (owner) "/" (name) " " (version) }
        p.lead { "The latest " (PAYLOADS_SHOWN) " payloads stored for this version, newest first, as they were sent." }
        @if payloads.is_empty() {
            p id="no-payloads" { "No payload is stored for this version yet." }
        } @else {
            div.table-wrap {
                table id="payloads" {
                    thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                    tbody {
                        @for p in &payloads {
                            tr { @for c in &columns { td { (cell(p.get(c))) } } }
                        }
                    }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(
            &format!("{owner}/{name} {version}"),
            Nav::Algorithms,
            &signed_in,
            main,
        ),
    )
}
