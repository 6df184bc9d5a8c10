//! The Algorithmia-compatible API: calling algorithms (`/v1/algo`), managing algorithms and
//! versions (`/v1/algorithms`), and the per-worker insights endpoint (`/worker/{token}/v1/insights`).

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use insights_payload::RequestId;
use insights_runtime::catalog::{NewAlgorithm, PublishRequest, VersionSettingsPatch};
use insights_runtime::{CallRequest, Input, RawResult};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::auth::credential;
use crate::body::{LimitedBody, ReportBody};
use crate::error::{ApiError, parse_json};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A valid API key (or the admin token). An extractor, so that it runs before the body is
/// read: a request without a key is refused without buffering what it sends.
pub(crate) struct ApiKey;

impl axum::extract::FromRequestParts<AppState> for ApiKey {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        match credential(&parts.headers) {
            None => Err(ApiError::unauthorized(
                "an API key is required: send `Authorization: Simple <key>`; the admin creates keys with POST /v1/admin/api-keys",
            )),
            Some(c) if state.keys.verify(c).is_some() || state.admin.matches(c) => Ok(ApiKey),
            Some(_) => Err(ApiError::unauthorized(
                "the API key is not valid (it may have been revoked)",
            )),
        }
    }
}

/// The token of a live worker, from the path, checked before the body is read.
pub(crate) struct LiveWorker(String);

impl axum::extract::FromRequestParts<AppState> for LiveWorker {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &AppState,
    ) -> Result<Self, ApiError> {
        let Path(token) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::not_found(e.to_string()))?;
        if state.runtime.knows_worker(&token) {
            Ok(LiveWorker(token))
        } else {
            Err(ApiError::from(insights_runtime::ReportError::UnknownWorker))
        }
    }
}

/// `POST /v1/algo/{owner}/{name}[/{version}]`
pub(crate) async fn call_algorithm(
    State(state): State<AppState>,
    Path(path): Path<Vec<String>>,
    Query(query): Query<HashMap<String, String>>,
    _key: ApiKey,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let (owner, name, version) = match path.as_slice() {
        [o, n] => (o.clone(), n.clone(), None),
        [o, n, v] => (o.clone(), n.clone(), Some(v.clone())),
        _ => unreachable!("routes have two or three segments"),
    };
    let timeout = match query.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(t) => Duration::from_secs(t.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "timeout",
                format!("must be a whole number of seconds (got {t:?})"),
            )
        })?),
    };
    let capture_stdout = match query.get("stdout") {
        None => false,
        Some(s) => parse_bool(s).ok_or_else(|| {
            ApiError::invalid("stdout", format!("must be true or false (got {s:?})"))
        })?,
    };
    let output = query.get("output").map(String::as_str);
    if let Some(o) = output.filter(|o| !matches!(*o, "raw" | "void" | "default")) {
        return Err(ApiError::invalid(
            "output",
            format!("must be raw or void (got {o:?})"),
        ));
    }
    let input = parse_input(&headers, body)?;
    let request = CallRequest {
        request_id: RequestId::new(),
        owner,
        name,
        version,
        input,
        timeout,
        capture_stdout,
    };

    if output == Some("void") {
        // Fire and forget: the execution still runs to completion and emits its payload.
        state.runtime.catalog().resolve(
            &request.owner,
            &request.name,
            request.version.as_deref(),
        )?;
        let Ok(slot) = state.void_calls.clone().try_acquire_owned() else {
            metrics::counter!("insights_void_calls_refused_total").increment(1);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableError",
                "the limit of calls with output=void waiting or running is reached (limits.max_void_calls); retry later",
            ));
        };
        let runtime = state.runtime.clone();
        let request_id = request.request_id.to_string();
        tokio::spawn(async move {
            if let Err(e) = runtime.call(request).await {
                tracing::warn!(error = %e, "a void call failed");
            }
            drop(slot);
        });
        return Ok(
            Json(json!({"async_protocol": "void", "request_id": request_id})).into_response(),
        );
    }

    let response = state.runtime.call(request).await?;
    let request_id = HeaderValue::from_str(response.request_id.as_str()).expect("ids are ASCII");
    let mut http = match response.outcome {
        Ok((result, content_type)) if output == Some("raw") => raw_response(result, &content_type),
        Ok((result, content_type)) => {
            let mut metadata = json!({
                "content_type": content_type,
                "duration": response.duration.as_secs_f64(),
            });
            if let Some(stdout) = response.stdout {
                metadata["stdout"] = stdout.into();
            }
            // The result as the algorithm wrote it (see `RawResult`): not through a `Value`,
            // which would turn a large integer into a float.
            let body = format!(r#"{{"result":{},"metadata":{metadata}}}"#, result.json());
            ([(CONTENT_TYPE, "application/json")], body).into_response()
        }
        // The algorithm ran and failed: 200 with an error object, as Algorithmia answers, so
        // that the official clients raise the algorithm's own message and error type.
        Err(e) => {
            let mut error = json!({"message": e.message, "error_type": e.error_type});
            if let Some(st) = e.stacktrace {
                error["stacktrace"] = st.into();
            }
            let mut body = json!({"error": error});
            if let Some(stdout) = response.stdout {
                body["metadata"] =
                    json!({"stdout": stdout, "duration": response.duration.as_secs_f64()});
            }
            Json(body).into_response()
        }
    };
    http.headers_mut().insert("x-request-id", request_id);
    Ok(http)
}

fn raw_response(result: RawResult, content_type: &str) -> Response {
    match (content_type, result.as_string()) {
        ("text", Some(s)) => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], s).into_response(),
        ("binary", Some(b64)) => match base64::engine::general_purpose::STANDARD.decode(&b64) {
            Ok(bytes) => ([(CONTENT_TYPE, "application/octet-stream")], bytes).into_response(),
            Err(_) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "SystemError",
                "the algorithm's binary result is not valid base64",
            )
            .into_response(),
        },
        _ => (
            [(CONTENT_TYPE, "application/json")],
            result.json().to_string(),
        )
            .into_response(),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "true" | "True" | "1" => Some(true),
        "false" | "False" | "0" => Some(false),
        _ => None,
    }
}

fn parse_input(headers: &HeaderMap, body: Bytes) -> Result<Input, ApiError> {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/json" => serde_json::from_slice(&body)
            .map(Input::Json)
            .map_err(|e| ApiError::invalid("body", format!("is not valid JSON: {e}"))),
        t if t.starts_with("text/") => String::from_utf8(body.to_vec())
            .map(Input::Text)
            .map_err(|_| ApiError::invalid("body", "a text/plain body must be UTF-8")),
        "application/octet-stream" => Ok(Input::Binary(body.to_vec())),
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "InputError",
            format!(
                "Content-Type {:?} is not accepted: use application/json, text/plain or application/octet-stream",
                other
            ),
        )),
    }
}

/// `POST /worker/{token}/v1/insights`: metrics reported by the algorithm during an execution.
pub(crate) async fn report_insights(
    State(state): State<AppState>,
    LiveWorker(token): LiveWorker,
    ReportBody(body): ReportBody,
) -> Result<Json<Value>, ApiError> {
    let accepted = state.runtime.report(&token, &body)?;
    Ok(Json(json!({"accepted": accepted})))
}

/// `POST /v1/algorithms/{owner}`
pub(crate) async fn register_algorithm(
    State(state): State<AppState>,
    Path(owner): Path<String>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let new: NewAlgorithm = parse_json(&body)?;
    let view = state.runtime.catalog().register(&owner, new)?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /v1/algorithms/{owner}/{name}`
pub(crate) async fn get_algorithm(
    State(state): State<AppState>,
    Path((owner, name)): Path<(String, String)>,
    _key: ApiKey,
) -> Result<Response, ApiError> {
    Ok(Json(state.runtime.catalog().algorithm(&owner, &name)?).into_response())
}

/// `POST /v1/algorithms/{owner}/{name}/versions`
pub(crate) async fn publish_version(
    State(state): State<AppState>,
    Path((owner, name)): Path<(String, String)>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: PublishRequest = parse_json(&body)?;
    let view = state
        .runtime
        .catalog()
        .publish(&owner, &name, request)
        .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /v1/algorithms/{owner}/{name}/versions`
pub(crate) async fn list_versions(
    State(state): State<AppState>,
    Path((owner, name)): Path<(String, String)>,
    _key: ApiKey,
) -> Result<Response, ApiError> {
    let a = state.runtime.catalog().algorithm(&owner, &name)?;
    Ok(Json(json!({"results": a.versions})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchVersion {
    settings: VersionSettingsPatch,
}

/// `PATCH /v1/algorithms/{owner}/{name}/versions/{version}`
pub(crate) async fn patch_version(
    State(state): State<AppState>,
    Path((owner, name, version)): Path<(String, String, String)>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let patch: PatchVersion = parse_json(&body)?;
    let view =
        state
            .runtime
            .catalog()
            .set_version_settings(&owner, &name, &version, patch.settings)?;
    Ok(Json(view).into_response())
}
