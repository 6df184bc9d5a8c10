//! The accept loop: every TCP connection the server holds is bounded in number and in how long
//! it may sit without sending a request.
//!
//! `axum::serve` keeps a connection for as long as the peer keeps it open, with no timeout and
//! no cap: a few hundred sockets that sent half a request once held the process until it ran out
//! of file descriptors and stopped answering everyone. Here
//!
//! - a request's line and headers must arrive within `header_read_timeout`, counted from the
//!   moment the connection opened or its previous response was sent. That one timer (hyper's)
//!   bounds both a slow request and an idle keep-alive connection: a connection is idle exactly
//!   while the next request's headers have not arrived. Closed connections are counted in
//!   `insights_http_connections_closed_total{reason="header_timeout"}`.
//! - at most `max_connections` are open at once. Beyond, a new connection is answered at once
//!   with a 503 in the API's error shape (with `Retry-After`) and closed, counted in
//!   `insights_http_connections_refused_total`: the client learns why instead of waiting in the
//!   kernel's backlog, and the connections already open are not disturbed.
//!
//! The bodies of requests are bounded by `limits.max_body_bytes`; a call's own duration by its
//! timeout. Neither is this module's business.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::{Service as _, ServiceExt as _};

/// How connections are bounded.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// A request's line and headers must arrive within this, from the connection's opening or
    /// the end of its previous response (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Connections open at once; beyond, new ones get a 503 and are closed.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            // nginx's client_header_timeout; long enough for a kept-alive client pool.
            header_read_timeout: Duration::from_secs(60),
            // Far below the process's open-file limit here (`ulimit -n`: 20000), leaving room
            // for workers' pipes, the store and the spool.
            max_connections: 4096,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets every connection
/// finish the request it is serving and returns once all are closed.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let open = metrics::gauge!("insights_http_connections");
    let refused = metrics::counter!("insights_http_connections_refused_total");
    let mut make_service = router.into_make_service_with_connect_info::<SocketAddr>();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or the peer gave up before we accepted: the
                    // listener is fine, so keep serving, without a log line per attempt.
                    accept_error(&e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.increment(1);
            connections.spawn(refuse(stream));
            continue;
        };
        let service = match make_service.call(peer).await {
            Ok(s) => s,
            Err(never) => match never {},
        };
        let header_read_timeout = limits.header_read_timeout;
        let shutdown = shutdown.clone();
        let open = open.clone();
        connections.spawn(async move {
            open.increment(1.0);
            let _ = stream.set_nodelay(true);
            let hyper_service = hyper::service::service_fn(move |request| {
                service.clone().oneshot(request.map(axum::body::Body::new))
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), hyper_service);
            tokio::pin!(connection);
            let result = tokio::select! {
                r = connection.as_mut() => r,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                let reason = if e.is_timeout() {
                    "header_timeout"
                } else {
                    "error"
                };
                metrics::counter!("insights_http_connections_closed_total", "reason" => reason)
                    .increment(1);
            }
            open.decrement(1.0);
            drop(slot);
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Tells a client over the connection limit why it is turned away, in the API's error shape.
async fn refuse(mut stream: TcpStream) {
    const BODY: &str = concat!(
        r#"{"error":{"message":"the server holds as many connections as it may "#,
        r#"(http.max_connections); retry shortly, or reuse a kept-alive connection"}}"#
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    // Bounded: a peer that does not read its answer does not keep the socket.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

/// Logs a failed accept at most once a minute (they come in bursts when descriptors run out).
fn accept_error(e: &std::io::Error) {
    use std::sync::Mutex;
    use std::time::Instant;
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    metrics::counter!("insights_http_accept_errors_total").increment(1);
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
        *last = Some(Instant::now());
        tracing::warn!(error = %e, "accepting a connection failed (counted in insights_http_accept_errors_total; logged once a minute)");
    }
}
