//! The alerting API (admin token or panel session), over [`insights_alerts::Alerts`]:
//!
//! - `/v1/admin/checks` (GET, POST), `/v1/admin/checks/{id}` (GET with the level of every
//!   series, PUT, DELETE), `POST /v1/admin/checks/preview?runs=30` (the level each recent
//!   window would get, for the form's live preview);
//! - `/v1/admin/notification-endpoints` (GET, POST), `…/{id}` (GET, PUT, DELETE),
//!   `POST …/{id}/test` (a marked test message; the verdict in words);
//! - `/v1/admin/notification-rules` (GET, POST), `…/{id}` (GET, PUT, DELETE);
//! - `GET /v1/admin/statuses?check=&algorithm=&version=&level=&from=&to=&limit=`: the history
//!   of level changes;
//! - `GET /v1/admin/notifications?rule=&endpoint=&check=&level=&state=&from=&limit=`: each notification,
//!   its state (waiting, retrying, sent, dropped, suppressed), attempts and last error.
//!
//! The alerting calls are synchronous (SQLite), so they run on the blocking pool.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights_alerts::{AlertError, Alerts, Level, NotificationFilter, StatusFilter};
use serde_json::Value;
use time::OffsetDateTime;

use crate::AppState;
use crate::auth::Admin;
use crate::body::LimitedBody;
use crate::error::ApiError;

impl From<AlertError> for ApiError {
    fn from(e: AlertError) -> Self {
        match e {
            AlertError::Invalid(fields) => ApiError::fields(
                fields
                    .into_iter()
                    .map(|f| insights_kafka::FieldError {
                        field: f.field,
                        message: f.message,
                    })
                    .collect(),
            ),
            AlertError::NotFound(what) => ApiError::not_found(format!("{what} was not found")),
            AlertError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "ConflictError", m),
            AlertError::Internal(detail) => ApiError::internal(detail),
        }
    }
}

fn json_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("is not valid JSON: {e}")))
}

async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&Alerts) -> Result<T, AlertError> + Send + 'static,
) -> Result<T, ApiError> {
    let alerts: Arc<Alerts> = state.alerts.clone();
    Ok(tokio::task::spawn_blocking(move || f(&alerts))
        .await
        .map_err(ApiError::internal)??)
}

fn id_ok(id: &str) -> Result<(), ApiError> {
    if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::not_found("no such id"));
    }
    Ok(())
}

// --- checks -------------------------------------------------------------------------------

pub(crate) async fn list_checks(
    State(s): State<AppState>,
    _a: Admin,
) -> Result<Response, ApiError> {
    Ok(Json(blocking(&s, |a| a.checks()).await?).into_response())
}

pub(crate) async fn create_check(
    State(s): State<AppState>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let doc = json_body(&body)?;
    let c = blocking(&s, move |a| a.create_check(&doc)).await?;
    Ok((StatusCode::CREATED, Json(c)).into_response())
}

pub(crate) async fn get_check(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    Ok(Json(blocking(&s, move |a| a.check(&id)).await?).into_response())
}

pub(crate) async fn put_check(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    let doc = json_body(&body)?;
    Ok(Json(blocking(&s, move |a| a.update_check(&id, &doc)).await?).into_response())
}

pub(crate) async fn delete_check(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    blocking(&s, move |a| a.delete_check(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn preview_check(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let runs = match q.get("runs") {
        None => 30,
        Some(r) => r
            .parse::<usize>()
            .ok()
            .filter(|r| (1..=200).contains(r))
            .ok_or_else(|| ApiError::invalid("runs", "must be a whole number, 1 to 200"))?,
    };
    let doc = json_body(&body)?;
    Ok(Json(blocking(&s, move |a| a.preview_check(&doc, runs)).await?).into_response())
}

// --- endpoints ----------------------------------------------------------------------------

pub(crate) async fn list_endpoints(
    State(s): State<AppState>,
    _a: Admin,
) -> Result<Response, ApiError> {
    Ok(Json(s.alerts.endpoints()).into_response())
}

pub(crate) async fn create_endpoint(
    State(s): State<AppState>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let doc = json_body(&body)?;
    let e = blocking(&s, move |a| a.create_endpoint(&doc)).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

pub(crate) async fn get_endpoint(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    Ok(Json(s.alerts.endpoint(&id)?).into_response())
}

pub(crate) async fn put_endpoint(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    let doc = json_body(&body)?;
    Ok(Json(blocking(&s, move |a| a.update_endpoint(&id, &doc)).await?).into_response())
}

pub(crate) async fn delete_endpoint(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    blocking(&s, move |a| a.delete_endpoint(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn test_endpoint(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    Ok(Json(s.alerts.test_endpoint(&id).await?).into_response())
}

// --- rules --------------------------------------------------------------------------------

pub(crate) async fn list_rules(State(s): State<AppState>, _a: Admin) -> Result<Response, ApiError> {
    Ok(Json(blocking(&s, |a| a.rules()).await?).into_response())
}

pub(crate) async fn create_rule(
    State(s): State<AppState>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let doc = json_body(&body)?;
    let r = blocking(&s, move |a| a.create_rule(&doc)).await?;
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

pub(crate) async fn get_rule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    Ok(Json(blocking(&s, move |a| a.rule(&id)).await?).into_response())
}

pub(crate) async fn put_rule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    let doc = json_body(&body)?;
    Ok(Json(blocking(&s, move |a| a.update_rule(&id, &doc)).await?).into_response())
}

pub(crate) async fn delete_rule(
    State(s): State<AppState>,
    Path(id): Path<String>,
    _a: Admin,
) -> Result<Response, ApiError> {
    id_ok(&id)?;
    blocking(&s, move |a| a.delete_rule(&id)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// --- history ------------------------------------------------------------------------------

fn known(q: &HashMap<String, String>, allowed: &[&str]) -> Result<(), ApiError> {
    for k in q.keys() {
        if !allowed.contains(&k.as_str()) {
            let shown: String = k.chars().take(64).collect();
            return Err(ApiError::invalid(
                &shown.escape_debug().to_string(),
                format!("is not a known parameter; use {}", allowed.join(", ")),
            ));
        }
    }
    Ok(())
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("limit") {
        None => Ok(100),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| ApiError::invalid("limit", "must be a whole number, 1 to 1000")),
    }
}

fn time_param(
    q: &HashMap<String, String>,
    name: &str,
    now: OffsetDateTime,
) -> Result<Option<OffsetDateTime>, ApiError> {
    q.get(name)
        .map(|v| crate::series::instant(name, v, now))
        .transpose()
}

pub(crate) async fn statuses(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    _a: Admin,
) -> Result<Response, ApiError> {
    known(
        &q,
        &[
            "check",
            "algorithm",
            "version",
            "level",
            "from",
            "to",
            "limit",
        ],
    )?;
    let now = OffsetDateTime::now_utc();
    let level = q
        .get("level")
        .map(|l| {
            l.parse::<Level>()
                .map_err(|e| ApiError::invalid("level", e))
        })
        .transpose()?;
    let f = StatusFilter {
        check: q.get("check").cloned(),
        algorithm: q.get("algorithm").cloned(),
        version: q.get("version").cloned(),
        level,
        from: time_param(&q, "from", now)?,
        to: time_param(&q, "to", now)?,
        limit: limit(&q)?,
    };
    Ok(Json(blocking(&s, move |a| a.statuses(&f)).await?).into_response())
}

pub(crate) async fn notifications(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    _a: Admin,
) -> Result<Response, ApiError> {
    known(
        &q,
        &[
            "rule", "endpoint", "check", "level", "state", "from", "limit",
        ],
    )?;
    let level = q
        .get("level")
        .map(|l| {
            l.parse::<Level>()
                .map_err(|e| ApiError::invalid("level", e))
        })
        .transpose()?;
    let state = q.get("state").cloned();
    if let Some(st) = &state
        && !["waiting", "retrying", "sent", "dropped", "suppressed"].contains(&st.as_str())
    {
        return Err(ApiError::invalid(
            "state",
            "must be one of waiting, retrying, sent, dropped, suppressed",
        ));
    }
    let now = OffsetDateTime::now_utc();
    let f = NotificationFilter {
        rule: q.get("rule").cloned(),
        endpoint: q.get("endpoint").cloned(),
        check: q.get("check").cloned(),
        level,
        state,
        from: time_param(&q, "from", now)?,
        limit: limit(&q)?,
    };
    Ok(Json(blocking(&s, move |a| a.notifications(&f)).await?).into_response())
}
