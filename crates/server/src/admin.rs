//! The admin API (`/v1/admin/...`): API keys, stored payloads, the catalog at a glance.
//! Every handler checks the admin token first.

use std::collections::HashMap;

use crate::body::LimitedBody;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use insights_store::{PayloadQuery, PayloadScope};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::auth::Admin;
use crate::error::{ApiError, parse_json};

const MAX_PAYLOADS_PER_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    name: String,
}

/// `POST /v1/admin/api-keys`: the key is in this answer and nowhere else, ever.
pub(crate) async fn create_key(
    State(state): State<AppState>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let new: NewKey = parse_json(&body)?;
    let created = state.keys.create(&new.name)?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `GET /v1/admin/api-keys`: names and dates, never the keys.
pub(crate) async fn list_keys(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    Ok(Json(json!({"results": state.keys.list()?})).into_response())
}

/// `DELETE /v1/admin/api-keys/{id}`
pub(crate) async fn revoke_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    state.keys.revoke(&id)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/admin/algorithms`
pub(crate) async fn list_algorithms(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    Ok(Json(json!({"results": state.runtime.catalog().algorithms()})).into_response())
}

/// `GET /v1/admin/insights/payloads?algorithm=owner/name&version=&limit=`: the stored payloads,
/// newest first, as the exact JSON objects that were emitted.
pub(crate) async fn list_payloads(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let mut q = PayloadQuery {
        limit: 100,
        ..Default::default()
    };
    if let Some(a) = query.get("algorithm").filter(|a| !a.is_empty()) {
        let (owner, name) = a.split_once('/').ok_or_else(|| {
            ApiError::invalid("algorithm", format!("must be owner/name (got {a:?})"))
        })?;
        q.scope = PayloadScope::Algorithm {
            owner: owner.to_string(),
            name: name.to_string(),
        };
    }
    if let Some(v) = query.get("version").filter(|v| !v.is_empty()) {
        let PayloadScope::Algorithm { owner, name } = std::mem::take(&mut q.scope) else {
            return Err(ApiError::invalid(
                "version",
                "needs algorithm=owner/name as well",
            ));
        };
        q.scope = PayloadScope::Version {
            owner,
            name,
            version: v.clone(),
        };
    }
    if let Some(l) = query.get("limit") {
        q.limit = l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAYLOADS_PER_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("must be a number from 1 to {MAX_PAYLOADS_PER_PAGE} (got {l:?})"),
                )
            })?;
    }
    let store = state.store.clone();
    let rows = tokio::task::spawn_blocking(move || store.payloads(&q))
        .await
        .map_err(ApiError::internal)??;
    // Concatenated as stored: the objects are byte-for-byte what was emitted.
    let mut body = String::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push('[');
    body.push_str(&rows.join(","));
    body.push(']');
    Ok(([(CONTENT_TYPE, "application/json")], body).into_response())
}
