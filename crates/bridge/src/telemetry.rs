//! The bridge's `/metrics` (Prometheus text format): messages consumed, points written, batches
//! retried, messages dead-lettered by reason, consumer lag, write latency.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Installs the process's metrics recorder and serves `/metrics` on `addr`; returns the address
/// it bound (useful with port 0).
pub async fn serve_metrics(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ],
        )
        .expect("the bucket list is not empty")
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)
        .map_err(|_| std::io::Error::other("a metrics recorder is already installed"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("metrics.listen {addr}: {e}")))?;
    let bound = listener.local_addr()?;
    let upkeep = handle.clone();
    let app = Router::new().route("/metrics", get(move || async move { upkeep.render() }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics endpoint stopped");
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            handle.run_upkeep();
        }
    });
    tracing::info!(%bound, "bridge metrics on /metrics");
    Ok(bound)
}
