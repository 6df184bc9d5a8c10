//! Request bodies read within a bound, and every error response in the API's shape.
//!
//! Two things the framework does on its own that a client cannot act on:
//! - an over-size body gets a plain-text 413 without naming the limit, and the connection is
//!   closed with the rest of the body unread, so a client still sending sees a broken pipe
//!   instead of the answer (an algorithm's oversized report did);
//! - a wrong method (405), a bad query string or path (400) and the like answer plain text or
//!   nothing.
//!
//! [`read_limited`] reads a body up to its bound and, past it, reads on and discards (within a
//! bound of its own) so that the client gets to read the 413. [`api_errors`] rewrites any error
//! response that is not already JSON (or one of the panel's pages) into Algorithmia's error
//! object with a message that says what to do.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;

use crate::error::ApiError;

/// Past the bound, this much more is read and discarded so that the client reads our 413
/// rather than a reset connection; beyond it, the connection is closed.
const DRAIN_BYTES: usize = 16 << 20;
/// And for at most this long.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Reads `body` whole if it is at most `limit` bytes; else a 413 that names `setting`.
pub(crate) async fn read_limited(
    body: Body,
    limit: usize,
    setting: &str,
) -> Result<Bytes, ApiError> {
    let mut body = body;
    let mut buf = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::invalid("body", format!("the request body could not be read: {e}"))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            let seen = buf.len() + data.len();
            drop(buf);
            let _ = tokio::time::timeout(DRAIN_TIME, drain(body, DRAIN_BYTES)).await;
            return Err(too_large(limit, setting, Some(seen)));
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.into())
}

async fn drain(mut body: Body, mut left: usize) {
    while let Some(Ok(frame)) = body.frame().await {
        let n = frame.data_ref().map_or(0, Bytes::len);
        if n >= left {
            return;
        }
        left -= n;
    }
}

fn too_large(limit: usize, setting: &str, seen: Option<usize>) -> ApiError {
    let seen = seen.map_or(String::new(), |n| {
        format!(" (at least {n} bytes were sent)")
    });
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "InputError",
        format!(
            "the request body exceeds {limit} bytes, the limit set by {setting}{seen}; send less"
        ),
    )
}

/// Middleware: an error response that is neither JSON nor a page becomes Algorithmia's error
/// object. `max_body_bytes` names the general limit in a 413.
pub(crate) async fn api_errors(max_body_bytes: usize, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") || content_type.starts_with("text/html") {
        return response;
    }
    let (parts, body) = response.into_parts();
    // The framework's own texts are short ("Failed to deserialize query string: …").
    let text = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => too_large(max_body_bytes, "limits.max_body_bytes", None),
        // The router adds its Allow header outside this layer, so it is named, not quoted.
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "InputError",
            format!("{method} is not accepted here; the Allow header lists the methods that are"),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::new(
            status,
            "InputError",
            format!("{text}; send Content-Type: application/json"),
        ),
        s if s.is_client_error() => ApiError::new(
            s,
            "InputError",
            if text.is_empty() {
                format!("the request was refused ({s})")
            } else {
                text
            },
        ),
        s => {
            tracing::error!(status = %s, detail = %text, "an error response outside the API's shape");
            ApiError::new(
                s,
                "SystemError",
                "internal error; the server log has the details",
            )
        }
    };
    let mut out = error.into_response();
    for (name, value) in &parts.headers {
        if name == header::RETRY_AFTER {
            out.headers_mut().insert(name, value.clone());
        }
    }
    if out.headers().get(header::CONNECTION).is_none() && status == StatusCode::PAYLOAD_TOO_LARGE {
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    out
}

/// A request body of at most `limits.max_body_bytes`, read before the handler runs; past it, a
/// 413 in the API's shape that the client gets to read.
pub(crate) struct LimitedBody(pub(crate) Bytes);

impl axum::extract::FromRequest<crate::AppState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &crate::AppState) -> Result<Self, ApiError> {
        read_limited(
            req.into_body(),
            state.max_body_bytes,
            "limits.max_body_bytes",
        )
        .await
        .map(LimitedBody)
    }
}

/// The most a report body (`POST /worker/{token}/v1/insights`) may hold. A valid report is at
/// most 25,000 bytes of keys and values plus its JSON framing (25 items); anything far larger
/// is refused before it is parsed, so that one report cannot cost megabytes of memory, answer
/// and log (a 15 MB metric name once did all three).
pub(crate) const MAX_REPORT_BYTES: usize = 64 << 10;

/// A report body, bounded by [`MAX_REPORT_BYTES`].
pub(crate) struct ReportBody(pub(crate) Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for ReportBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        read_limited(
            req.into_body(),
            MAX_REPORT_BYTES,
            "the report limit (a valid report of 25 metrics is at most about 26 KB)",
        )
        .await
        .map(ReportBody)
    }
}
