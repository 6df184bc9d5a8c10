//! What an operator sets for Datadog delivery ([`DatadogConfig`]: the spool's bounds, the
//! window, the intake's limits) and what the administrator sets at run time
//! ([`DatadogRequest`], validated into [`DatadogSettings`]: site, API key, prefix, tags).

use std::path::PathBuf;
use std::time::Duration;

use insights_kafka::{FieldError, Secret};
use serde::{Deserialize, Serialize};

/// How Datadog delivery behaves; every bound is here.
#[derive(Debug, Clone)]
pub struct DatadogConfig {
    /// Where the spool lives (`<data-dir>/datadog-spool`), apart from Kafka's.
    pub spool_dir: PathBuf,
    /// The most the spool holds on disk; past it the oldest payloads are dropped and counted.
    pub spool_max_bytes: u64,
    pub segment_bytes: u64,
    /// `fdatasync` each appended batch: survives power loss, not only a process crash.
    pub fsync: bool,
    /// How long each payload is tried after it was handed over.
    pub window: Duration,
    /// Datadog refuses points older than an hour: a payload whose `time` is older than this
    /// when a request is built is dropped and counted (`datadog_too_old`). An hour less a
    /// margin for the request's own way there.
    pub max_point_age: Duration,
    /// One request, connection included.
    pub request_timeout: Duration,
    /// The first wait after a failed request; doubled per failure (with jitter) up to
    /// `backoff_max`.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Datadog's limits per request: 512,000 bytes compressed, 5,242,880 decompressed.
    pub max_request_bytes: usize,
    pub max_uncompressed_bytes: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// A warning that repeats (the same kind of failure) is logged at most this often.
    pub log_interval: Duration,
    /// Called on the delivery thread and its runtime's threads as they start and stop: how
    /// the server schedules them (none by default).
    pub threads: crate::ThreadHooks,
}

impl DatadogConfig {
    pub fn new(spool_dir: PathBuf) -> Self {
        Self {
            spool_dir,
            spool_max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: false,
            window: Duration::from_secs(3600),
            max_point_age: Duration::from_secs(3600 - 60),
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            max_request_bytes: 512_000,
            max_uncompressed_bytes: 5_242_880,
            concurrency: 4,
            log_interval: Duration::from_secs(30),
            threads: crate::ThreadHooks::default(),
        }
    }

    /// How long a payload can wait and still reach Datadog: the shorter of the window and the
    /// age past which Datadog refuses points.
    pub fn effective_window(&self) -> Duration {
        self.window.min(self.max_point_age)
    }
}

/// The Datadog sites (`api.<site>` serves the intake).
pub const SITES: [&str; 7] = [
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "ddog-gov.com",
];

/// The longest metric name Datadog takes.
pub(crate) const MAX_METRIC_NAME: usize = 200;
/// The longest tag Datadog takes.
pub(crate) const MAX_TAG: usize = 200;
const MAX_PREFIX: usize = 100;
const MAX_TAGS: usize = 50;
const MAX_API_KEY: usize = 256;

/// What the administrator sends (`PUT /v1/admin/insights/datadog`, `[datadog]` in the config
/// file): every field optional here, so that each missing one is named in the errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadogRequest {
    /// `datadoghq.com`, `datadoghq.eu`, `us3.datadoghq.com`, … (see [`SITES`]).
    pub site: Option<String>,
    /// The API key; left out on an edit, the stored one is kept.
    pub api_key: Option<Secret>,
    /// Put before every metric name (`algorithmia.`, as the original integration did).
    pub metric_prefix: Option<String>,
    /// Added to every point (`env:prod`).
    pub tags: Option<Vec<String>>,
    /// Also tag `request_id` and `session_id`, as the original integration did: a new custom
    /// metric (billed) per execution. Off by default.
    pub legacy_id_tags: Option<bool>,
    /// Send to this URL instead of `https://api.<site>` (a proxy, a test's stand-in).
    pub url: Option<String>,
}

/// The Datadog delivery as validated: nothing downstream checks it again.
#[derive(Clone, PartialEq, Eq)]
pub struct DatadogSettings {
    pub site: String,
    pub api_key: Secret,
    pub metric_prefix: String,
    pub tags: Vec<String>,
    pub legacy_id_tags: bool,
    /// Without a trailing slash: `https://api.datadoghq.com`, or the override.
    pub url: Option<String>,
}

impl std::fmt::Debug for DatadogSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatadogSettings")
            .field("site", &self.site)
            .field("api_key", &self.api_key)
            .field("metric_prefix", &self.metric_prefix)
            .field("tags", &self.tags)
            .field("legacy_id_tags", &self.legacy_id_tags)
            .field("url", &self.url)
            .finish()
    }
}

/// What the admin API shows of the settings: never the key, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatadogView {
    pub site: String,
    pub api_key_set: bool,
    pub metric_prefix: String,
    pub tags: Vec<String>,
    pub legacy_id_tags: bool,
    pub url: Option<String>,
}

impl DatadogSettings {
    /// `https://api.<site>` or the override, without a trailing slash.
    pub fn base_url(&self) -> String {
        match &self.url {
            Some(u) => u.clone(),
            None => format!("https://api.{}", self.site),
        }
    }

    pub fn series_url(&self) -> String {
        format!("{}/api/v2/series", self.base_url())
    }

    pub fn validate_url(&self) -> String {
        format!("{}/api/v1/validate", self.base_url())
    }

    pub fn view(&self) -> DatadogView {
        DatadogView {
            site: self.site.clone(),
            api_key_set: !self.api_key.expose().is_empty(),
            metric_prefix: self.metric_prefix.clone(),
            tags: self.tags.clone(),
            legacy_id_tags: self.legacy_id_tags,
            url: self.url.clone(),
        }
    }
}

fn field(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        message: message.into(),
    }
}

impl DatadogRequest {
    /// The request from a stored view plus its key (the inverse of [`DatadogSettings::view`]).
    pub fn from_view(view: DatadogView, api_key: Option<Secret>) -> Self {
        Self {
            site: Some(view.site),
            api_key,
            metric_prefix: Some(view.metric_prefix),
            tags: Some(view.tags),
            legacy_id_tags: Some(view.legacy_id_tags),
            url: view.url,
        }
    }

    /// Validates every field, reporting every faulty one at once. `stored_key` stands in for
    /// a key left out (an edit that keeps the stored key).
    pub fn validate(self, stored_key: Option<&Secret>) -> Result<DatadogSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let site = self.site.as_deref().map(str::trim).unwrap_or("");
        if site.is_empty() {
            errors.push(field(
                "site",
                format!("is required: one of {}", SITES.join(", ")),
            ));
        } else if !SITES.contains(&site) {
            errors.push(field(
                "site",
                format!(
                    "`{}` is not a Datadog site: use one of {}",
                    cut(site),
                    SITES.join(", ")
                ),
            ));
        }
        let api_key = match (self.api_key, stored_key) {
            (Some(k), _) if !k.expose().trim().is_empty() => Some(Secret::new(k.expose().trim())),
            (_, Some(k)) => Some(k.clone()),
            _ => None,
        };
        match &api_key {
            None => errors.push(field(
                "api_key",
                "is required (Organization Settings → API Keys in Datadog)",
            )),
            Some(k) if k.expose().len() > MAX_API_KEY => errors.push(field(
                "api_key",
                format!("is longer than {MAX_API_KEY} characters"),
            )),
            Some(k) if !k.expose().bytes().all(|b| b.is_ascii_alphanumeric()) => {
                errors.push(field(
                    "api_key",
                    "may hold only letters and digits (a Datadog API key is 32 hexadecimal digits)",
                ))
            }
            Some(_) => {}
        }
        let metric_prefix = self.metric_prefix.unwrap_or_else(|| "algorithmia.".into());
        if metric_prefix.len() > MAX_PREFIX {
            errors.push(field(
                "metric_prefix",
                format!("is longer than {MAX_PREFIX} characters"),
            ));
        } else if let Some(c) = metric_prefix.chars().find(|c| !is_name_char(*c)) {
            errors.push(field(
                "metric_prefix",
                format!(
                    "holds {c:?}: Datadog metric names take ASCII letters, digits, `_` and `.`"
                ),
            ));
        } else if metric_prefix
            .chars()
            .next()
            .is_some_and(|c| !c.is_ascii_alphabetic())
        {
            errors.push(field(
                "metric_prefix",
                "must start with a letter, as Datadog metric names do",
            ));
        }
        let tags = self.tags.unwrap_or_default();
        if tags.len() > MAX_TAGS {
            errors.push(field("tags", format!("at most {MAX_TAGS} tags")));
        }
        let mut clean_tags = Vec::with_capacity(tags.len());
        for (i, tag) in tags.iter().enumerate() {
            let tag = tag.trim();
            let name = format!("tags[{i}]");
            if tag.is_empty() {
                errors.push(field(name, "is empty"));
            } else if tag.len() > MAX_TAG {
                errors.push(field(name, format!("is longer than {MAX_TAG} characters")));
            } else if !tag.chars().next().is_some_and(|c| c.is_ascii_alphabetic()) {
                errors.push(field(
                    name,
                    format!("`{}` must start with a letter", cut(tag)),
                ));
            } else if let Some(c) = tag.chars().find(|c| !is_tag_char(*c)) {
                errors.push(field(
                    name,
                    format!(
                        "`{}` holds {c:?}: tags take letters, digits, `_`, `-`, `:`, `.` and `/`",
                        cut(tag)
                    ),
                ));
            } else if tag.ends_with(':') {
                errors.push(field(
                    name,
                    format!("`{}` has no value after `:`", cut(tag)),
                ));
            } else if [
                "algorithm_name",
                "algorithm_owner",
                "algorithm_version",
                "request_id",
                "session_id",
            ]
            .iter()
            .any(|k| tag == *k || tag.starts_with(&format!("{k}:")))
            {
                errors.push(field(
                    name,
                    format!("`{}` is set by Insights on every point", cut(tag)),
                ));
            } else {
                clean_tags.push(tag.to_string());
            }
        }
        let url = match self.url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let u = u.trim_end_matches('/');
                match reqwest::Url::parse(u) {
                    Ok(parsed)
                        if matches!(parsed.scheme(), "http" | "https")
                            && parsed.host().is_some() =>
                    {
                        if parsed.query().is_some()
                            || !parsed.username().is_empty()
                            || parsed.password().is_some()
                        {
                            errors.push(field("url", "must have no query and no credentials: the key goes in the DD-API-KEY header"));
                            None
                        } else {
                            Some(u.to_string())
                        }
                    }
                    Ok(_) => {
                        errors.push(field(
                            "url",
                            "must be an http:// or https:// URL with a host",
                        ));
                        None
                    }
                    Err(e) => {
                        errors.push(field("url", format!("is not a URL ({e})")));
                        None
                    }
                }
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(DatadogSettings {
            site: site.to_string(),
            api_key: api_key.expect("checked above"),
            metric_prefix,
            tags: clean_tags,
            legacy_id_tags: self.legacy_id_tags.unwrap_or(false),
            url,
        })
    }
}

pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/')
}

/// Echoed input, cut to 64 characters.
fn cut(s: &str) -> String {
    let mut out: String = s.chars().take(64).flat_map(char::escape_default).collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: serde_json::Value) -> DatadogRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_full_request_validates_with_defaults() {
        let s = request(json!({"site": "datadoghq.eu", "api_key": "abc123", "tags": ["env:prod"]}))
            .validate(None)
            .unwrap();
        assert_eq!(s.metric_prefix, "algorithmia.");
        assert!(!s.legacy_id_tags);
        assert_eq!(s.series_url(), "https://api.datadoghq.eu/api/v2/series");
        assert_eq!(s.validate_url(), "https://api.datadoghq.eu/api/v1/validate");
        assert!(!format!("{s:?}").contains("abc123"));
    }

    #[test]
    fn every_faulty_field_is_named() {
        let errors = request(json!({
            "site": "datadog.com",
            "metric_prefix": "1bad-",
            "tags": ["env:prod", "", "Ünï", "algorithm_name:x", "9lives"],
            "url": "ftp://x"
        }))
        .validate(None)
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "site",
                "api_key",
                "metric_prefix",
                "tags[1]",
                "tags[2]",
                "tags[3]",
                "tags[4]",
                "url"
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn a_left_out_key_keeps_the_stored_one() {
        let stored = Secret::new("k1");
        let s = request(json!({"site": "datadoghq.com", "url": "http://127.0.0.1:9/"}))
            .validate(Some(&stored))
            .unwrap();
        assert_eq!(s.api_key.expose(), "k1");
        assert_eq!(s.series_url(), "http://127.0.0.1:9/api/v2/series");
        assert!(s.view().api_key_set);
    }
}
