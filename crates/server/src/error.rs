//! `ApiError`: every error the HTTP API returns, as Algorithmia's error object
//! `{"error": {"message", "error_type"}}` (plus `field` when one input field is at fault).
//! Internal details go to the log, never to the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights_runtime::{ReportError, RuntimeError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Every invalid field, when a request had several.
    pub fields: Vec<insights_kafka::FieldError>,
    /// When to try again, sent as `Retry-After` (every 429 and 503 carries one: 1 s unless
    /// the error knows better).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            error_type,
            message: message.into(),
            field: None,
            fields: Vec::new(),
            retry_after: None,
        }
    }

    /// 429: the client sent too many of something; `wait` until it may again.
    pub fn too_many_requests(message: impl Into<String>, wait: std::time::Duration) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "RateLimitError", message);
        e.retry_after = Some(wait);
        e
    }

    /// Several invalid fields at once: the message lists them all, `field` names the first.
    pub fn fields(fields: Vec<insights_kafka::FieldError>) -> Self {
        let message = fields
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "InputError",
            message,
            field: fields.first().map(|f| f.field.clone()),
            fields,
            retry_after: None,
        }
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error_type: "InputError",
            message: format!("{field}: {}", message.into()),
            field: Some(field.to_string()),
            fields: Vec::new(),
            retry_after: None,
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "AuthorizationError", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "EntityNotFoundError", message)
    }

    /// A failure of ours: the client gets a generic message, the log gets the detail.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "SystemError",
            "internal error; the server log has the details",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({
            "message": self.message,
            "error_type": self.error_type,
        });
        if let Some(field) = self.field {
            error["field"] = field.into();
        }
        if !self.fields.is_empty() {
            error["fields"] = serde_json::to_value(&self.fields).expect("serializes");
        }
        let mut response =
            (self.status, Json(serde_json::json!({ "error": error }))).into_response();
        if self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status == StatusCode::SERVICE_UNAVAILABLE
        {
            let seconds = self.retry_after.map_or(1, |d| d.as_secs().max(1));
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::InvalidField { field, message } => ApiError::invalid(&field, message),
            RuntimeError::AlgorithmNotFound(_) | RuntimeError::VersionNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            RuntimeError::AlreadyExists(_) => {
                ApiError::new(StatusCode::CONFLICT, "ConflictError", e.to_string())
            }
            RuntimeError::ShuttingDown => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "SystemError",
                e.to_string(),
            ),
            RuntimeError::Busy(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableError",
                e.to_string(),
            ),
            RuntimeError::Store(_) | RuntimeError::Io(_) | RuntimeError::Internal(_) => {
                ApiError::internal(e)
            }
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match &e {
            ReportError::UnknownWorker => {
                ApiError::new(StatusCode::FORBIDDEN, "AuthorizationError", e.to_string())
            }
            ReportError::Malformed(_) => ApiError::invalid("body", e.to_string()),
            ReportError::ExecutionFinished => {
                ApiError::new(StatusCode::CONFLICT, "ConflictError", e.to_string())
            }
            ReportError::Rejected(rejections) => {
                let mut err = ApiError::new(StatusCode::BAD_REQUEST, "InputError", e.to_string());
                err.field = rejections.first().map(|r| r.key.clone());
                err
            }
        }
    }
}

impl From<insights_store::StoreError> for ApiError {
    fn from(e: insights_store::StoreError) -> Self {
        match e {
            insights_store::StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            insights_store::StoreError::AlreadyExists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "ConflictError", e.to_string())
            }
            _ => ApiError::internal(e),
        }
    }
}

/// Parses a JSON body, naming the field at fault.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "body".to_string()
        } else {
            path
        };
        ApiError::invalid(&field, e.inner().to_string())
    })
}
