//! The Kafka connection's admin endpoints (`/v1/admin/insights/connection`): served to the
//! admin with its live state, validated, saved and handed to delivery, tested. Storing it (the
//! password sealed with the data directory's secret key) is `stored_connection.rs`'s job.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights_kafka::{ConnectionRequest, ConnectionSettings, test_connection};
use serde_json::json;

use crate::AppState;
use crate::auth::Admin;
use crate::body::LimitedBody;
use crate::error::{ApiError, parse_json};

fn current(state: &AppState) -> Result<Option<ConnectionSettings>, ApiError> {
    state.connection.load().map_err(ApiError::internal)
}

/// Validates a request against the stored connection. An edit may leave the password out to
/// keep the stored one, but only for the same brokers, username, connection type and CA
/// certificate: the stored password is never sent to brokers (or through a TLS trust) the
/// administrator has not already trusted with it.
fn validated(
    state: &AppState,
    request: ConnectionRequest,
) -> Result<(ConnectionSettings, Vec<String>), ApiError> {
    // A stored connection that cannot be read (secret.key replaced, rules that changed) must
    // not stand in the way of saving a new one: it is replaced, its password not reused.
    let stored = state.connection.load().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the stored Kafka connection cannot be read; the new one replaces it");
        None
    });
    let trim = |s: Option<&str>| s.map(str::trim).unwrap_or("").to_string();
    let stored_password = stored
        .as_ref()
        .filter(|s| {
            let view = s.view();
            view.brokers == request.brokers.trim()
                && view.username == request.username
                && view.connection_type == request.connection_type
                && trim(view.ca_certificate.as_deref()) == trim(request.ca_certificate.as_deref())
        })
        .and_then(|s| s.password().cloned());
    request
        .validate(stored_password.as_ref())
        .map_err(ApiError::fields)
}

/// `GET /v1/admin/insights/connection`: the connection (never its password), its live state
/// (`status.state`, and `status.problem` naming what delivery fails on: `unknown_topic`,
/// `not_authorized`, `no_leader`, `timed_out`, `unreachable`, `authentication_failed`,
/// `tls_failed`), and that state in words (`summary`: `label` and `sentence`, as the panel
/// shows them).
pub(crate) async fn get(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let (connection, stored_error) = match state.connection.load() {
        Ok(c) => (c.map(|s| s.view()), None),
        Err(e) => (
            None,
            Some(format!(
                "the stored connection cannot be read ({e}); save the connection again"
            )),
        ),
    };
    let status = state.kafka.status();
    let summary = crate::kafka_status_words::status_in_words(&status);
    Ok(Json(json!({
        "connection": connection,
        "stored_connection_error": stored_error,
        "status": status,
        "summary": summary,
    }))
    .into_response())
}

/// `PUT /v1/admin/insights/connection`: validates, saves, and switches delivery to it.
pub(crate) async fn put(
    State(state): State<AppState>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: ConnectionRequest = parse_json(&body)?;
    let (settings, warnings) = validated(&state, request)?;
    state
        .connection
        .change(Some(&settings), &state.kafka)
        .map_err(ApiError::internal)?;
    tracing::info!(topic = %settings.topic, brokers = %settings.brokers.joined(), "Kafka connection saved");
    Ok(Json(json!({"connection": settings.view(), "warnings": warnings})).into_response())
}

/// `DELETE /v1/admin/insights/connection`: disconnects. Payloads still waiting stay in the
/// spool until their window ends, in case a connection is saved again in time.
pub(crate) async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    state
        .connection
        .change(None, &state.kafka)
        .map_err(ApiError::internal)?;
    tracing::info!("Kafka connection removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/admin/insights/connection/test`: tests the given settings (or, with an empty body,
/// the stored ones) and answers with a verdict.
pub(crate) async fn test(
    State(state): State<AppState>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let settings = if body.iter().all(u8::is_ascii_whitespace) {
        current(&state)?.ok_or_else(|| {
            ApiError::invalid("body", "no connection is stored; send the settings to test")
        })?
    } else {
        validated(&state, parse_json(&body)?)?.0
    };
    let verdict =
        tokio::task::spawn_blocking(move || test_connection(&settings, Duration::from_secs(10)))
            .await
            .map_err(ApiError::internal)?;
    Ok(Json(verdict).into_response())
}
