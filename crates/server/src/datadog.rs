//! Datadog delivery's admin endpoints (`/v1/admin/insights/datadog`): the settings served
//! without the API key (only `api_key_set`) with the live state in words and counts,
//! validated and saved (the key sealed with the data directory's [`SecretBox`]) and handed to
//! delivery, removed, and the key tested against the intake's `/api/v1/validate`.
//!
//! [`DatadogStore`] is the settings at rest: one setting in the configuration store, as the
//! Kafka connection is (`stored_connection.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights_delivery::DatadogStatus;
use insights_delivery::datadog::{
    DatadogDelivery, DatadogProblem, DatadogRequest, DatadogSettings, DatadogView, test_api_key,
};
use insights_kafka::Secret;
use insights_store::{ConfigStore, SecretBox, SecretError, StoreError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::body::LimitedBody;
use crate::error::{ApiError, parse_json};

/// The setting the Datadog delivery is stored under.
const SETTING: &str = "datadog_delivery";

/// Why the stored settings cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoredDatadogError {
    #[error(transparent)]
    Database(#[from] StoreError),
    /// The sealed key does not open with this data directory's key.
    #[error(transparent)]
    KeyCannotBeOpened(#[from] SecretError),
    #[error("the stored Datadog settings are invalid: {0}")]
    Malformed(#[source] serde_json::Error),
    #[error("the stored Datadog settings are invalid: {0:?}")]
    NoLongerValid(Vec<insights_kafka::FieldError>),
}

/// The stored Datadog settings.
pub struct DatadogStore {
    store: Arc<dyn ConfigStore>,
    secrets: SecretBox,
    changing: std::sync::Mutex<()>,
}

impl DatadogStore {
    pub fn new(store: Arc<dyn ConfigStore>, secrets: SecretBox) -> Self {
        Self {
            store,
            secrets,
            changing: std::sync::Mutex::new(()),
        }
    }

    /// Saves `settings` (or removes them) and hands them to delivery, as one step.
    pub fn change(
        &self,
        settings: Option<&DatadogSettings>,
        delivery: &DatadogDelivery,
    ) -> Result<(), StoredDatadogError> {
        let _one_at_a_time = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        match settings {
            Some(s) => self.save(s)?,
            None => self.store.set_setting(SETTING, None)?,
        }
        delivery.configure(settings.cloned());
        Ok(())
    }

    /// The stored settings, the key opened; `None` when none are stored.
    pub fn load(&self) -> Result<Option<DatadogSettings>, StoredDatadogError> {
        let Some(mut doc) = self.store.setting(SETTING)? else {
            return Ok(None);
        };
        let key = match doc.get("api_key_sealed").and_then(Value::as_str) {
            Some(sealed) => Some(Secret::new(self.secrets.open(sealed)?)),
            None => None,
        };
        if let Some(o) = doc.as_object_mut() {
            o.remove("api_key_sealed");
        }
        let view: DatadogView =
            serde_json::from_value(doc).map_err(StoredDatadogError::Malformed)?;
        DatadogRequest::from_view(view, key)
            .validate(None)
            .map(Some)
            .map_err(StoredDatadogError::NoLongerValid)
    }

    /// Stores `settings`, the key sealed. Delivery is not told: [`Self::change`] does both.
    pub fn save(&self, settings: &DatadogSettings) -> Result<(), StoredDatadogError> {
        let mut doc = serde_json::to_value(settings.view()).expect("a view serializes");
        if let Some(o) = doc.as_object_mut() {
            o.insert(
                "api_key_sealed".into(),
                self.secrets.seal(settings.api_key.expose()).into(),
            );
        }
        Ok(self.store.set_setting(SETTING, Some(&doc))?)
    }
}

/// Validates a request; a key left out keeps the stored one, but only for the same site and
/// URL: the stored key is never sent to an intake the administrator has not trusted with it.
fn validated(state: &AppState, request: DatadogRequest) -> Result<DatadogSettings, ApiError> {
    let stored = state.datadog_settings.load().unwrap_or_else(|e| {
        tracing::warn!(error = %e, "the stored Datadog settings cannot be read; the new ones replace them");
        None
    });
    let norm = |u: Option<&str>| {
        u.map(|u| u.trim().trim_end_matches('/').to_string())
            .filter(|u| !u.is_empty())
    };
    let stored_key = stored
        .as_ref()
        .filter(|s| {
            request.site.as_deref().map(str::trim) == Some(s.site.as_str())
                && norm(request.url.as_deref()) == s.url
        })
        .map(|s| s.api_key.clone());
    request
        .validate(stored_key.as_ref())
        .map_err(ApiError::fields)
}

/// The Datadog state in words, as the panel shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct StatusWords {
    /// `Not configured`, `Connecting`, `Delivering`, `Failing`.
    pub(crate) label: &'static str,
    pub(crate) sentence: String,
}

pub(crate) fn status_in_words(status: &DatadogStatus) -> StatusWords {
    let window = window_words(status.window_seconds);
    let (label, sentence) = match status.state {
        "not_configured" => (
            "Not configured",
            "No Datadog delivery is set: payloads are not sent to Datadog.".to_string(),
        ),
        "connecting" => (
            "Connecting",
            format!("Waiting for the intake's first answer; payloads wait for up to {window}."),
        ),
        "connected" => (
            "Delivering",
            "Datadog accepts the series: every metric of each payload arrives as a gauge at the payload's time.".to_string(),
        ),
        _ => (
            "Failing",
            match status.problem {
                Some(DatadogProblem::KeyRefused) => format!(
                    "The API key was refused (HTTP 403). Nothing is sent until the key is changed; payloads wait for up to {window}."
                ),
                Some(DatadogProblem::RateLimited) => format!(
                    "Datadog asks to slow down (HTTP 429): payloads wait until its rate limit resets, for up to {window}."
                ),
                Some(DatadogProblem::ServerError) => format!(
                    "The Datadog intake is failing (HTTP 5xx): payloads wait and are sent again with backoff, for up to {window}."
                ),
                Some(DatadogProblem::TimedOut) => format!(
                    "The intake did not answer in time: payloads wait and are sent again, for up to {window}."
                ),
                Some(DatadogProblem::Unreachable) => format!(
                    "The intake cannot be reached (check the site, the URL, DNS and the proxy): payloads wait for up to {window}."
                ),
                Some(DatadogProblem::BadRequest) => {
                    "Datadog refused a request as malformed (HTTP 400): its payloads were dropped; the technical detail below has the answer.".to_string()
                }
                Some(DatadogProblem::UnexpectedAnswer) | None => format!(
                    "The intake answered something other than Datadog's answers (check the URL): payloads wait for up to {window}."
                ),
            },
        ),
    };
    StatusWords { label, sentence }
}

fn window_words(seconds: u64) -> String {
    if seconds >= 3600 && seconds.is_multiple_of(3600) {
        format!("{} h", seconds / 3600)
    } else if seconds >= 60 {
        format!("{} min", seconds / 60)
    } else {
        format!("{seconds} s")
    }
}

/// `GET /v1/admin/insights/datadog`: the settings (never the key: `api_key_set`), the live
/// state (`status`) and that state in words (`summary`).
pub(crate) async fn get(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let (settings, stored_error) = match state.datadog_settings.load() {
        Ok(s) => (s.map(|s| s.view()), None),
        Err(e) => (
            None,
            Some(format!(
                "the stored Datadog settings cannot be read ({e}); save them again"
            )),
        ),
    };
    let status = state.datadog.status();
    let summary = status_in_words(&status);
    Ok(Json(json!({
        "settings": settings,
        "stored_settings_error": stored_error,
        "status": status,
        "summary": summary,
        "window_note": format!(
            "Payloads wait for Datadog at most {}: the shorter of the delivery window and the hour past which Datadog refuses points.",
            window_words(status.window_seconds)
        ),
    }))
    .into_response())
}

/// `PUT /v1/admin/insights/datadog`: validates, saves, and switches delivery to it.
pub(crate) async fn put(
    State(state): State<AppState>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let request: DatadogRequest = parse_json(&body)?;
    let settings = validated(&state, request)?;
    state
        .datadog_settings
        .change(Some(&settings), &state.datadog)
        .map_err(ApiError::internal)?;
    tracing::info!(site = %settings.site, url = ?settings.url, "Datadog delivery saved");
    Ok(Json(json!({"settings": settings.view()})).into_response())
}

/// `DELETE /v1/admin/insights/datadog`: stops taking payloads for Datadog. Those waiting stay
/// in the spool until their window ends, in case settings are saved again in time.
pub(crate) async fn delete(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    state
        .datadog_settings
        .change(None, &state.datadog)
        .map_err(ApiError::internal)?;
    tracing::info!("Datadog delivery removed");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/admin/insights/datadog/test`: checks the given settings' key (or, with an empty
/// body, the stored one) against the intake and answers a verdict in words.
pub(crate) async fn test(
    State(state): State<AppState>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let settings = if body.iter().all(u8::is_ascii_whitespace) {
        state
            .datadog_settings
            .load()
            .map_err(ApiError::internal)?
            .ok_or_else(|| {
                ApiError::invalid(
                    "body",
                    "no Datadog settings are stored; send the settings to test",
                )
            })?
    } else {
        validated(&state, parse_json(&body)?)?
    };
    let verdict = test_api_key(&settings, Duration::from_secs(10)).await;
    Ok(Json(verdict).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use insights_store::Store;

    #[test]
    fn saved_settings_load_back_with_the_key_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let config: Arc<dyn ConfigStore> = Arc::new(Store::open_in_memory().unwrap());
        let stored = DatadogStore::new(
            config.clone(),
            SecretBox::load_or_create(dir.path()).unwrap(),
        );
        assert!(stored.load().unwrap().is_none());
        let request: DatadogRequest = serde_json::from_value(json!({
            "site": "datadoghq.eu", "api_key": "abcdef0123456789", "tags": ["env:prod"]
        }))
        .unwrap();
        let settings = request.validate(None).unwrap();
        stored.save(&settings).unwrap();
        assert_eq!(stored.load().unwrap(), Some(settings));
        let doc = config.setting(SETTING).unwrap().unwrap().to_string();
        assert!(!doc.contains("abcdef0123456789"), "{doc}");
        assert!(doc.contains("api_key_sealed"));
    }

    #[test]
    fn each_problem_in_words() {
        let words = |problem| {
            let mut status = DatadogStatus::default();
            status.state = "failing";
            status.problem = Some(problem);
            status.window_seconds = 3600;
            status_in_words(&status).sentence
        };
        assert!(words(DatadogProblem::KeyRefused).contains("The API key was refused"));
        assert!(words(DatadogProblem::RateLimited).contains("429"));
        assert!(words(DatadogProblem::Unreachable).contains("up to 1 h"));
    }
}
