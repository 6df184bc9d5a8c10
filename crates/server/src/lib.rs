//! The HTTP layer, and only that: every route Insights answers, over an [`AppState`] that the
//! binary composes (`crates/insights/src/serve.rs`: the store, delivery, the runtime).
//!
//! - the public API (`/v1/algo`, `/v1/algorithms`), compatible with Algorithmia's clients;
//! - the per-worker insights endpoint (`/worker/{token}/v1/insights`), which algorithms reach
//!   through the `ALGORITHMIA_API` their worker was given;
//! - the admin API (`/v1/admin/...`), with the admin token or a panel session, including the
//!   dashboards (`dashboards`) the panel draws over the series query API (`series`);
//! - the admin panel (`/admin/...`), web pages over the admin API;
//! - operations: `/metrics` (Prometheus) and `/healthz`.
//!
//! [`app`] is the router; [`serve`] runs it on a listener the caller bound, until the caller's
//! shutdown signal (mini-redis' shape), with every connection bounded ([`ConnectionLimits`]).
//! `auth` sits below both the JSON API and the panel: neither imports the other.

mod admin;
mod alerts;
mod api;
pub mod auth;
mod body;
mod connection;
mod connections;
mod dashboards;
mod datadog;
mod error;
mod kafka_status_words;
mod panel;
mod series;
mod stored_connection;
mod telemetry;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use insights_delivery::{DatadogDelivery, Handoff, KafkaDelivery};
use insights_runtime::Runtime;
use insights_store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{AdminToken, ApiKeys, PanelConfig, Sessions};
pub use connections::ConnectionLimits;
pub use datadog::{DatadogStore, StoredDatadogError};
pub use error::ApiError;
pub use stored_connection::{ConnectionStore, StoredConnectionError};

/// Shared by every handler: one `Arc`, so that the clone a handler's `State` extractor makes
/// on every request is one atomic increment (and its drop one decrement), not one per service
/// (they were about 2 % of a call's CPU in `scripts/bench-runtime`'s profile).
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What the handlers use.
pub struct Services {
    pub runtime: Arc<Runtime>,
    pub store: Arc<Store>,
    pub keys: Arc<auth::ApiKeys>,
    pub admin: Arc<auth::AdminToken>,
    pub handoff: Handoff,
    pub kafka: Arc<KafkaDelivery>,
    pub connection: Arc<stored_connection::ConnectionStore>,
    /// Datadog delivery, and its settings at rest.
    pub datadog: Arc<DatadogDelivery>,
    pub datadog_settings: Arc<datadog::DatadogStore>,
    pub sessions: Arc<auth::Sessions>,
    /// Slots for calls with `output=void` (`ServerConfig::max_void_calls`).
    pub void_calls: Arc<tokio::sync::Semaphore>,
    /// The largest request body accepted (`limits.max_body_bytes`).
    pub max_body_bytes: usize,
    /// The embedded series store, for the series query API.
    pub series: Arc<insights_series::SeriesStore>,
    /// Checks, notification endpoints and rules over the series store.
    pub alerts: Arc<insights_alerts::Alerts>,
}

/// The whole HTTP surface.
pub fn app(state: AppState) -> Router {
    let max_body_bytes = state.max_body_bytes;
    Router::new()
        .route("/v1/algo/{owner}/{name}", post(api::call_algorithm))
        .route(
            "/v1/algo/{owner}/{name}/{version}",
            post(api::call_algorithm),
        )
        .route("/worker/{token}/v1/insights", post(api::report_insights))
        .route("/v1/algorithms/{owner}", post(api::register_algorithm))
        .route("/v1/algorithms/{owner}/{name}", get(api::get_algorithm))
        .route(
            "/v1/algorithms/{owner}/{name}/versions",
            post(api::publish_version).get(api::list_versions),
        )
        .route(
            "/v1/algorithms/{owner}/{name}/versions/{version}",
            axum::routing::patch(api::patch_version),
        )
        .route("/v1/admin/algorithms", get(admin::list_algorithms))
        .route(
            "/v1/admin/api-keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route("/v1/admin/api-keys/{id}", delete(admin::revoke_key))
        .route("/v1/admin/insights/payloads", get(admin::list_payloads))
        .route("/v1/admin/insights/series", get(series::series))
        .route("/v1/admin/insights/metrics", get(series::metrics))
        .route(
            "/v1/admin/dashboards",
            get(dashboards::list).post(dashboards::create),
        )
        // `{*id}`: a default dashboard's id holds a slash (`default:owner/name`).
        .route(
            "/v1/admin/dashboards/{*id}",
            get(dashboards::get)
                .put(dashboards::put)
                .delete(dashboards::delete),
        )
        .route(
            "/v1/admin/insights/connection",
            get(connection::get)
                .put(connection::put)
                .delete(connection::delete),
        )
        .route("/v1/admin/insights/connection/test", post(connection::test))
        .route(
            "/v1/admin/insights/datadog",
            get(datadog::get).put(datadog::put).delete(datadog::delete),
        )
        .route("/v1/admin/insights/datadog/test", post(datadog::test))
        .route(
            "/v1/admin/checks",
            get(alerts::list_checks).post(alerts::create_check),
        )
        .route("/v1/admin/checks/preview", post(alerts::preview_check))
        .route(
            "/v1/admin/checks/{id}",
            get(alerts::get_check)
                .put(alerts::put_check)
                .delete(alerts::delete_check),
        )
        .route(
            "/v1/admin/notification-endpoints",
            get(alerts::list_endpoints).post(alerts::create_endpoint),
        )
        .route(
            "/v1/admin/notification-endpoints/{id}",
            get(alerts::get_endpoint)
                .put(alerts::put_endpoint)
                .delete(alerts::delete_endpoint),
        )
        .route(
            "/v1/admin/notification-endpoints/{id}/test",
            post(alerts::test_endpoint),
        )
        .route(
            "/v1/admin/notification-rules",
            get(alerts::list_rules).post(alerts::create_rule),
        )
        .route(
            "/v1/admin/notification-rules/{id}",
            get(alerts::get_rule)
                .put(alerts::put_rule)
                .delete(alerts::delete_rule),
        )
        .route("/v1/admin/statuses", get(alerts::statuses))
        .route("/v1/admin/notifications", get(alerts::notifications))
        .route("/metrics", get(telemetry::metrics))
        .route("/healthz", get(telemetry::healthz))
        .merge(panel::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(move |request, next| {
            body::api_errors(max_body_bytes, request, next)
        }))
        .with_state(state)
}

/// Serves [`app`] on `listener` until `shutdown` is cancelled; then lets every connection
/// finish the request it is serving, and returns once all are closed.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    connections::serve(listener, app(state), limits, shutdown).await
}

/// Installs the process-wide Prometheus recorder behind `/metrics` and describes every metric
/// (once per process; later calls do nothing). Call it before the stages are built, so that
/// every metric handle they take is recorded.
pub fn install_metrics() {
    telemetry::install();
}
