//! The series query API (admin token or panel session):
//!
//! - `GET /v1/admin/insights/series?algorithm=owner/name&metric=risk_score&fn=mean&every=1m&from=-1h&to=now[&version=1.0.0]`:
//!   one series per version, one point per window that has data;
//! - `GET /v1/admin/insights/metrics?algorithm=owner/name`: the metrics seen per version, so
//!   that a form can offer them.
//!
//! Every parameter is checked here, and a bad one gets a 400 that names it and says what is
//! allowed. The store (`insights-series`) does the aggregation.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use insights_series::{AlgorithmPath, Every, Function};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339 as Rfc3339Format;

use crate::AppState;
use crate::auth::Admin;
use crate::error::ApiError;

/// The longest range a query may cover: what the coarsest level keeps by default.
const MAX_RANGE: Duration = Duration::from_secs(400 * 86_400);
/// The most windows one answer may hold per version.
const MAX_WINDOWS: u64 = 100_000;

/// `GET /v1/admin/insights/series`
pub(crate) async fn series(
    State(state): State<AppState>,
    _admin: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let get = |name: &str| params.get(name).map(|s| s.trim()).filter(|s| !s.is_empty());
    known_params(
        &params,
        &[
            "algorithm",
            "metric",
            "fn",
            "every",
            "from",
            "to",
            "version",
        ],
    )?;
    let algorithm = algorithm(get("algorithm"))?;
    let metric = get("metric")
        .ok_or_else(|| ApiError::invalid("metric", "is required: a metric the algorithm reports (see /v1/admin/insights/metrics), duration_milliseconds, insights.executions or insights.failures"))?
        .to_string();
    if metric.chars().count() > 200 {
        return Err(ApiError::invalid(
            "metric",
            "must be at most 200 characters",
        ));
    }
    let function: Function = get("fn")
        .unwrap_or("mean")
        .parse()
        .map_err(|e| ApiError::invalid("fn", format!("{e}")))?;
    let every: Every = get("every")
        .unwrap_or("1m")
        .parse()
        .map_err(|e| ApiError::invalid("every", format!("{e}")))?;
    let now = OffsetDateTime::now_utc();
    let from = instant("from", get("from").unwrap_or("-1h"), now)?;
    let to = instant("to", get("to").unwrap_or("now"), now)?;
    if from >= to {
        return Err(ApiError::invalid(
            "from",
            format!(
                "must be before `to` (from {}, to {})",
                rfc3339(from),
                rfc3339(to)
            ),
        ));
    }
    let span = to - from;
    if span > MAX_RANGE {
        return Err(ApiError::invalid(
            "from",
            "the range from `from` to `to` may cover at most 400 days",
        ));
    }
    let windows = span.whole_seconds().unsigned_abs() / every.as_secs().max(1);
    if windows > MAX_WINDOWS {
        return Err(ApiError::invalid(
            "every",
            format!(
                "gives {windows} windows over this range; at most {MAX_WINDOWS}: choose a larger `every` or a shorter range"
            ),
        ));
    }
    let version = get("version").map(str::to_string);
    let query = insights_series::Query {
        algorithm: algorithm.clone(),
        metric: metric.clone(),
        function,
        every,
        from,
        to,
        version,
    };
    let store = state.series.clone();
    let algorithm_path = format!("{}/{}", algorithm.owner, algorithm.name);
    // Query and encoding both off the async threads: a 30-day answer holds 43,200 windows.
    let body = tokio::task::spawn_blocking(move || {
        let result = store.query(&query)?;
        let answer = SeriesAnswer {
            algorithm: &algorithm_path,
            metric: &metric,
            function: function.as_str(),
            every: every.to_string(),
            from: Rfc3339(result.from),
            to: Rfc3339(result.to),
            series: result
                .series
                .iter()
                .map(|s| VersionAnswer {
                    version: &s.version,
                    points: s
                        .points
                        .iter()
                        .map(|p| PointAnswer {
                            time: Rfc3339(p.time),
                            // JSON has no NaN or infinity: such a window shows as null.
                            value: p.value.is_finite().then_some(p.value),
                            count: p.count,
                        })
                        .collect(),
                })
                .collect(),
        };
        Ok::<_, insights_series::SeriesError>(
            serde_json::to_vec(&answer).expect("the answer serializes"),
        )
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| ApiError::invalid("from", e.to_string()))?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

#[derive(serde::Serialize)]
struct SeriesAnswer<'a> {
    algorithm: &'a str,
    metric: &'a str,
    #[serde(rename = "fn")]
    function: &'static str,
    every: String,
    from: Rfc3339,
    to: Rfc3339,
    series: Vec<VersionAnswer<'a>>,
}

#[derive(serde::Serialize)]
struct VersionAnswer<'a> {
    version: &'a str,
    points: Vec<PointAnswer>,
}

#[derive(serde::Serialize)]
struct PointAnswer {
    time: Rfc3339,
    value: Option<f64>,
    count: u64,
}

/// A time as RFC 3339 in UTC (`2026-12-01T22:00:00Z`, with microseconds when it has any),
/// written without building a format description per point.
struct Rfc3339(OffsetDateTime);

impl std::fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        let (y, m, d) = (t.year(), u8::from(t.month()), t.day());
        let (h, mi, s, us) = (t.hour(), t.minute(), t.second(), t.microsecond());
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}")?;
        if us != 0 {
            write!(f, ".{us:06}")?;
        }
        f.write_str("Z")
    }
}

impl serde::Serialize for Rfc3339 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `GET /v1/admin/insights/metrics`
pub(crate) async fn metrics(
    State(state): State<AppState>,
    _admin: Admin,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    known_params(&params, &["algorithm"])?;
    let algorithm = algorithm(params.get("algorithm").map(|s| s.trim()))?;
    let store = state.series.clone();
    let path = algorithm.clone();
    let versions = tokio::task::spawn_blocking(move || store.metrics(&path))
        .await
        .map_err(ApiError::internal)?;
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            json!({
                "version": v.version,
                "metrics": v.metrics.iter().map(|m| json!({
                    "metric": m.metric,
                    "first_seen": rfc3339(m.first_seen),
                    "last_seen": rfc3339(m.last_seen),
                    "count": m.count,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "algorithm": format!("{}/{}", algorithm.owner, algorithm.name),
        "versions": versions,
    }))
    .into_response())
}

fn known_params(params: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match params.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(ApiError::invalid(
            &shown_param(k),
            format!("is not a parameter here; use {}", known.join(", ")),
        )),
    }
}

/// A parameter name from the query string, as it may be echoed: short and printable.
fn shown_param(k: &str) -> String {
    let shown: String = k.chars().filter(|c| !c.is_control()).take(40).collect();
    if shown.is_empty() { "?".into() } else { shown }
}

fn algorithm(given: Option<&str>) -> Result<AlgorithmPath, ApiError> {
    given
        .ok_or_else(|| ApiError::invalid("algorithm", "is required: owner/name"))?
        .parse()
        .map_err(|e| ApiError::invalid("algorithm", format!("{e}")))
}

/// `now`, a time relative to now (`-15m`, `-1h`, `-7d`, `-2w`, `-1h30m`), or RFC 3339
/// (`2026-12-01T10:00:00Z`).
pub(crate) fn instant(
    name: &str,
    given: &str,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, ApiError> {
    if given == "now" {
        return Ok(now);
    }
    if let Some(rest) = given.strip_prefix('-') {
        let ago = relative(rest).ok_or_else(|| {
            ApiError::invalid(
                name,
                "must be `now`, a time before now such as -15m, -1h, -7d (units s, m, h, d, w), or RFC 3339 such as 2026-12-01T10:00:00Z",
            )
        })?;
        return Ok(now - ago);
    }
    OffsetDateTime::parse(given, &Rfc3339Format).map_err(|_| {
        ApiError::invalid(
            name,
            "must be `now`, a time before now such as -15m, -1h, -7d, or RFC 3339 such as 2026-12-01T10:00:00Z",
        )
    })
}

/// `15m`, `1h30m`, `7d` as a duration; more than zero, at most 10 years.
fn relative(s: &str) -> Option<Duration> {
    insights_series::parse_seconds(s)
        .ok()
        .filter(|&t| t > 0 && t <= 10 * 366 * 86_400)
        .map(Duration::from_secs)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339Format)
        .expect("every UTC time has an RFC 3339 form")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_times_are_rfc_3339_as_the_time_crate_writes_them() {
        for t in [
            time::macros::datetime!(2026-12-01 22:00:00 UTC),
            time::macros::datetime!(1999-01-02 03:04:05.000006 UTC),
            time::macros::datetime!(2026-12-01 23:00:00 +01:00),
        ] {
            assert_eq!(Rfc3339(t).to_string(), rfc3339(t));
        }
    }

    #[test]
    fn times_are_now_relative_or_rfc_3339_and_anything_else_names_the_parameter() {
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        assert_eq!(instant("to", "now", now).unwrap(), now);
        assert_eq!(
            instant("from", "-1h30m", now).unwrap(),
            now - Duration::from_secs(5400)
        );
        assert_eq!(
            instant("from", "2027-01-15T08:00:00Z", now)
                .unwrap()
                .unix_timestamp(),
            1_800_000_000
        );
        for bad in ["-", "-1x", "-1h5", "yesterday", "-0m", "2027-01-15"] {
            let e = instant("from", bad, now).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("from"), "{bad}");
        }
    }
}
