//! `/metrics` (Prometheus text format) and `/healthz`.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once (several servers in one test process
/// share it) and describes every metric the pipeline records.
pub(crate) fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Suffix("_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    30.0, 60.0, 300.0,
                ],
            )
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        let upkeep = handle.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        handle
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "insights_calls_total",
        "Calls of /v1/algo by algorithm, version and outcome (success or the error_type)."
    );
    describe_counter!(
        "insights_calls_detached_total",
        "Calls whose caller went away (a client that disconnected) before the execution ended; \
         each one ran to its end in a task of its own and still produced its payload."
    );
    describe_histogram!(
        "insights_call_duration_seconds",
        Unit::Seconds,
        "Execution time in the worker."
    );
    describe_counter!(
        "insights_payloads_emitted_total",
        "Payloads handed to delivery, by algorithm and version."
    );
    describe_counter!(
        "insights_payloads_stored_total",
        "Payloads written to the embedded store."
    );
    describe_counter!(
        "insights_payloads_dropped_total",
        "Payloads dropped, by reason (handoff_full, shutting_down, store_error, store_queue_full, \
         kafka_error, kafka_queue_full, kafka_window_expired, kafka_spool_full, kafka_rejected, \
         kafka_spool_corrupt, datadog_error, datadog_queue_full, datadog_window_expired, \
         datadog_too_old, datadog_spool_full, datadog_rejected, datadog_spool_corrupt)."
    );
    describe_counter!(
        "insights_datadog_delivered_total",
        "Payloads Datadog accepted (HTTP 202)."
    );
    describe_counter!(
        "insights_datadog_intake_errors_total",
        "Errors listed in Datadog's 202 answers."
    );
    describe_counter!(
        "insights_datadog_metrics_refused_total",
        "Metrics not sent to Datadog because of their name, by reason (name_too_long, \
         name_not_starting_with_a_letter)."
    );
    describe_gauge!(
        "insights_datadog_waiting",
        "Payloads for Datadog neither accepted nor dropped yet."
    );
    describe_gauge!(
        "insights_datadog_spool_bytes",
        "Bytes of the Datadog spool on disk."
    );
    describe_counter!(
        "insights_payloads_pruned_total",
        "Old payloads deleted from the embedded store to keep it within its retention."
    );
    describe_counter!(
        "insights_reports_rejected_total",
        "Reported metrics refused, by reason."
    );
    describe_counter!("insights_worker_starts_total", "Worker processes started.");
    describe_counter!(
        "insights_worker_crashes_total",
        "Workers that ended abnormally, by reason (crash, timeout, bad_output, start_failed)."
    );
    describe_counter!(
        "insights_worker_idle_output_bytes_total",
        "Bytes a worker printed between calls: read (so that it never blocks) and dropped, since they belong to no caller."
    );
    describe_counter!(
        "insights_worker_restarts_total",
        "Workers started to replace one that ended abnormally."
    );
    describe_gauge!("insights_pool_size", "Workers a version's pool may run.");
    describe_gauge!(
        "insights_pool_busy_workers",
        "Workers of a version running a call right now."
    );
    describe_gauge!(
        "insights_handoff_depth",
        "Payloads waiting in the delivery hand-off."
    );
    describe_gauge!(
        "insights_http_connections",
        "HTTP connections open (bounded by http.max_connections)."
    );
    describe_counter!(
        "insights_http_connections_refused_total",
        "Connections answered 503 and closed because http.max_connections were open."
    );
    describe_counter!(
        "insights_http_connections_closed_total",
        "Connections closed by the server, by reason (header_timeout: no complete request \
         headers within http.header_read_timeout_seconds, idle keep-alive included; error)."
    );
    describe_counter!(
        "insights_http_accept_errors_total",
        "Failed accepts (e.g. out of file descriptors); the server keeps listening."
    );
}

pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    metrics::gauge!("insights_handoff_depth").set(state.handoff.depth() as f64);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        install().render(),
    )
}

pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}
