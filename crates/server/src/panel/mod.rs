//! The admin panel under `/admin`: server-rendered pages (maud escapes everything it writes)
//! with one small script, `assets/panel.js` (and, on the dashboards pages, `assets/dashboards.js`
//! with uPlot vendored under `assets/vendor/uplot/`), that calls the admin API (`/v1/admin/...`) with the
//! session cookie and the page's CSRF token. The pages never hold a secret: not the admin token,
//! not the Kafka password (only whether one is set); an API key is shown once, in the answer
//! that created it.
//!
//! One file per page (`sign_in`, `insights`, `algorithms`, `dashboards`, `alerts`, `api_keys`) and `layout`, the frame
//! they share; cookies, CSRF and the sign-in limit are `auth::sessions`'.
//!
//! - `/admin/sign-in`, `/admin/sign-out`: `sign_in.rs`.
//! - `/admin/insights`: the Kafka connection, its state in words, delivery counts; the
//!   connection form in a modal.
//! - `/admin/algorithms`: versions with their Insights switch and counts; a version's latest
//!   payloads as a table.
//! - `/admin/dashboards`: the list (stored and default dashboards), a new one;
//!   `/admin/dashboards/{id}`: its cells as charts over the series query API, with a time
//!   range, auto-refresh, a version filter, a compare overlay and the cell editor.
//! - `/admin/alerts`: checks with each series' level, their form with a live preview,
//!   notification endpoints (with a test), rules, and the history (`alerts.rs`, `assets/alerts.js`).
//! - `/admin/api-keys`: create (shown once), list, revoke.

mod alerts;
mod algorithms;
mod api_keys;
mod dashboards;
mod insights;
mod layout;
mod sign_in;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;
use alerts::alerts_page;
use algorithms::{algorithms_page, version_page};
use api_keys::api_keys_page;
use dashboards::{dashboard_page, dashboards_page};
use insights::insights_page;
use sign_in::{sign_in, sign_in_page, sign_out};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/insights") }))
        .route("/admin/", get(|| async { Redirect::to("/admin/insights") }))
        .route("/admin/sign-in", get(sign_in_page).post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/insights", get(insights_page))
        .route("/admin/algorithms", get(algorithms_page))
        .route(
            "/admin/algorithms/{owner}/{name}/versions/{version}",
            get(version_page),
        )
        .route("/admin/dashboards", get(dashboards_page))
        .route("/admin/dashboards/{*id}", get(dashboard_page))
        .route("/admin/alerts", get(alerts_page))
        .route("/admin/api-keys", get(api_keys_page))
        .route("/admin/assets/panel.css", get(css))
        .route("/admin/assets/panel.js", get(js))
        .route("/admin/assets/dashboards.js", get(dashboards_js))
        .route("/admin/assets/alerts.js", get(alerts_js))
        .route(
            "/admin/assets/vendor/uplot/uPlot.iife.min.js",
            get(uplot_js),
        )
        .route("/admin/assets/vendor/uplot/uPlot.min.css", get(uplot_css))
        .route("/admin/assets/vendor/uplot/LICENSE", get(uplot_license))
        .layer(axum::middleware::map_response(security_headers))
}

/// No inline script or style, nothing from another origin, no framing, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/panel.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/panel.js"),
    )
}

async fn dashboards_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/dashboards.js"),
    )
}

async fn alerts_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/alerts.js"),
    )
}

async fn uplot_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uplot/uPlot.iife.min.js"),
    )
}

async fn uplot_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uplot/uPlot.min.css"),
    )
}

async fn uplot_license() -> Response {
    asset(
        "text/plain; charset=utf-8",
        include_str!("assets/vendor/uplot/LICENSE"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
