//! The dashboards API (admin token or panel session):
//!
//! - `GET /v1/admin/dashboards`: the stored dashboards, then the default dashboard of every
//!   algorithm with Insights on that has no stored one under its id;
//! - `POST /v1/admin/dashboards`: a new dashboard (201, with its id);
//! - `GET/PUT/DELETE /v1/admin/dashboards/{id}`.
//!
//! A dashboard is a name and cells; each cell a title, a [`Kind`], a [`CellQuery`] (what the
//! series query API is asked), [`DisplayOptions`] and a [`Position`] on a 12-column grid (no two
//! cells on the same square). A body is parsed with serde (`deny_unknown_fields`; `fn` and
//! `every` parsed by `insights_series`) and then checked ([`Dashboard::check`]); every error is
//! a 400 that names the field (`cells[2].query.fn`) and the limit. Documents are stored through the
//! configuration seam (`insights_store::ConfigStore`), as JSON.
//!
//! Default dashboards (`default:owner/name`) are computed on read from the catalog and the
//! metric catalog, never stored: a `graph_single_stat` per reported metric, then duration,
//! executions and failures per minute, every version overlaid. A PUT of a default id stores it
//! as a normal dashboard under that id, which then replaces the computed one (a DELETE brings
//! the computed one back).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use insights_kafka::FieldError;
use insights_series::{AlgorithmPath, EXECUTIONS, Every, FAILURES, Function};
use insights_store::{ConfigStore, DashboardRecord, StoreError, record_time_now};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::AppState;
use crate::auth::Admin;
use crate::body::LimitedBody;
use crate::error::{ApiError, parse_json};

/// The longest dashboard name and cell title, in characters.
pub(crate) const MAX_NAME: usize = 100;
/// The most cells a dashboard may hold.
pub(crate) const MAX_CELLS: usize = 50;
/// The most dashboards that may be stored.
pub(crate) const MAX_DASHBOARDS: usize = 500;
/// Columns of the grid.
pub(crate) const GRID_COLUMNS: u32 = 12;
const MAX_ROWS: u32 = 1000;
const MAX_HEIGHT: u32 = 24;
const MAX_METRIC: usize = 200;
const MAX_VERSIONS: usize = 20;
const MAX_THRESHOLDS: usize = 10;
const MAX_UNIT: usize = 20;
const MAX_DECIMALS: u8 = 10;
/// The prefix of a default dashboard's id, followed by `owner/name`.
pub(crate) const DEFAULT_PREFIX: &str = "default:";

/// A dashboard as it is sent and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Dashboard {
    /// Shown in the list and as the page's title: 1 to 100 characters, no control characters.
    pub name: String,
    /// At most 50.
    #[serde(default)]
    pub cells: Vec<Cell>,
}

/// One cell of a dashboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Cell {
    /// The chart's accessible name too: 1 to 100 characters, no control characters.
    pub title: String,
    pub kind: Kind,
    pub query: CellQuery,
    #[serde(default)]
    pub display: DisplayOptions,
    pub position: Position,
}

/// What a cell shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Kind {
    /// A line per version over the time range.
    Graph,
    /// The latest window's value.
    SingleStat,
    /// The line and the latest value on it.
    GraphSingleStat,
    /// The latest value between `min` and `max`.
    Gauge,
    /// The algorithm's latest payloads.
    Table,
}

/// What the series query API is asked for a cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CellQuery {
    /// `owner/name`.
    pub algorithm: String,
    /// A reported metric, `duration_milliseconds`, `insights.executions` or
    /// `insights.failures`; optional for a `table` (which then shows every key).
    #[serde(default)]
    pub metric: Option<String>,
    /// The aggregate per window (`mean` unless given).
    #[serde(rename = "fn", default)]
    pub function: Func,
    /// `"all"` (the default) or a list of versions.
    #[serde(default)]
    pub versions: Versions,
    /// For a single stat or gauge: the period the value is computed over, instead of the
    /// dashboard's time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
    /// The length of a graph's windows, instead of one chosen from the time range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Duration>,
}

/// An aggregate function, parsed by `insights_series` and written as it is named there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Func(pub Function);

impl Default for Func {
    fn default() -> Self {
        Func(Function::Mean)
    }
}

impl Serialize for Func {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Func {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(Func)
            .map_err(|e| serde::de::Error::custom(format!("{e}")))
    }
}

/// A window length (`10s` … `366d`), parsed by `insights_series::Every`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Duration(pub Every);

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map(Duration)
            .map_err(|e| serde::de::Error::custom(format!("{e}")))
    }
}

/// Which versions a cell shows.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Versions {
    #[default]
    All,
    List(Vec<String>),
}

impl Serialize for Versions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Versions::All => s.serialize_str("all"),
            Versions::List(l) => l.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Versions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        let wrong =
            || serde::de::Error::custom(r#"must be "all" or a list of versions such as ["1.0.0"]"#);
        match Raw::deserialize(d).map_err(|_: D::Error| wrong())? {
            Raw::Word(w) if w == "all" => Ok(Versions::All),
            Raw::Word(_) => Err(wrong()),
            Raw::List(l) => Ok(Versions::List(l)),
        }
    }
}

/// How a cell's numbers are shown.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DisplayOptions {
    /// Colors from a value up, in ascending order of `value` (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Threshold>,
    /// The axis or gauge bounds; `min` below `max` when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Written after each value (`ms`, `%`): at most 20 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// Digits after the decimal point, 0 to 10 (2 unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decimals: Option<u8>,
}

/// A color for values from `value` up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Threshold {
    pub value: f64,
    /// `#rgb` or `#rrggbb`.
    pub color: String,
}

/// Where a cell sits on the 12-column grid, in columns and rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Position {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl Dashboard {
    /// The rules serde cannot say: lengths, characters, ranges, the grid. Every broken rule
    /// is returned, each naming its field.
    pub(crate) fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut bad = |field: String, message: String| {
            errors.push(FieldError { field, message });
        };
        if let Err(m) = text(&self.name, MAX_NAME) {
            bad("name".into(), m);
        }
        if self.cells.len() > MAX_CELLS {
            bad(
                "cells".into(),
                format!(
                    "may hold at most {MAX_CELLS} cells (got {})",
                    self.cells.len()
                ),
            );
        }
        for (i, c) in self.cells.iter().enumerate() {
            let at = |f: &str| format!("cells[{i}].{f}");
            if let Err(m) = text(&c.title, MAX_NAME) {
                bad(at("title"), m);
            }
            let q = &c.query;
            if q.algorithm.chars().count() > MAX_METRIC
                || q.algorithm.parse::<AlgorithmPath>().is_err()
            {
                bad(
                    at("query.algorithm"),
                    format!("must be owner/name, at most {MAX_METRIC} characters"),
                );
            }
            match &q.metric {
                None if c.kind != Kind::Table => bad(
                    at("query.metric"),
                    "is required: a metric the algorithm reports (see /v1/admin/insights/metrics), duration_milliseconds, insights.executions or insights.failures".into(),
                ),
                None => {}
                Some(m) => {
                    if let Err(e) = text(m, MAX_METRIC) {
                        bad(at("query.metric"), e);
                    }
                }
            }
            if let Versions::List(list) = &q.versions {
                if list.is_empty() || list.len() > MAX_VERSIONS {
                    bad(
                        at("query.versions"),
                        format!(
                            "must be \"all\" or a list of 1 to {MAX_VERSIONS} versions (got {})",
                            list.len()
                        ),
                    );
                }
                for (j, v) in list.iter().enumerate() {
                    if let Err(e) = text(v, 64) {
                        bad(at(&format!("query.versions[{j}]")), e);
                    }
                }
            }
            let d = &c.display;
            if d.thresholds.len() > MAX_THRESHOLDS {
                bad(
                    at("display.thresholds"),
                    format!(
                        "may hold at most {MAX_THRESHOLDS} thresholds (got {})",
                        d.thresholds.len()
                    ),
                );
            }
            for (j, t) in d.thresholds.iter().enumerate() {
                if !is_color(&t.color) {
                    bad(
                        at(&format!("display.thresholds[{j}].color")),
                        "must be a color as #rgb or #rrggbb".into(),
                    );
                }
                if j > 0 && t.value <= d.thresholds[j - 1].value {
                    bad(
                        at(&format!("display.thresholds[{j}].value")),
                        "must be above the value of the threshold before it".into(),
                    );
                }
            }
            if let (Some(min), Some(max)) = (d.min, d.max)
                && min >= max
            {
                bad(at("display.min"), "must be below display.max".into());
            }
            if c.kind == Kind::Gauge && (d.min.is_none() || d.max.is_none()) {
                bad(
                    at("display.max"),
                    "a gauge needs display.min and display.max".into(),
                );
            }
            if let Some(u) = &d.unit
                && !u.is_empty()
                && let Err(e) = text(u, MAX_UNIT)
            {
                bad(at("display.unit"), e);
            }
            if d.decimals.is_some_and(|n| n > MAX_DECIMALS) {
                bad(
                    at("display.decimals"),
                    format!("must be 0 to {MAX_DECIMALS}"),
                );
            }
            let p = c.position;
            if p.x >= GRID_COLUMNS {
                bad(
                    at("position.x"),
                    format!(
                        "must be 0 to {} (the grid has {GRID_COLUMNS} columns)",
                        GRID_COLUMNS - 1
                    ),
                );
            }
            if p.w == 0 || p.x.saturating_add(p.w) > GRID_COLUMNS {
                bad(
                    at("position.w"),
                    format!("must be at least 1, with x + w at most {GRID_COLUMNS}"),
                );
            }
            if p.y > MAX_ROWS {
                bad(at("position.y"), format!("must be 0 to {MAX_ROWS}"));
            }
            if p.h == 0 || p.h > MAX_HEIGHT {
                bad(at("position.h"), format!("must be 1 to {MAX_HEIGHT}"));
            }
        }
        // Cells on the same squares would be drawn over each other, one hiding the other. Each
        // such cell is named with the first one it overlaps, so that an editor of either can say
        // which to move (one error per cell, however many overlap).
        let placed: Vec<(usize, &Cell)> = self
            .cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c.position.fits())
            .collect();
        for &(i, a) in &placed {
            if let Some(&(j, b)) = placed
                .iter()
                .find(|&&(j, b)| j != i && a.position.overlaps(&b.position))
            {
                let p = b.position;
                bad(
                    format!("cells[{i}].position"),
                    format!(
                        "overlaps cells[{j}] ({:?}, at x {}, y {}, w {}, h {}): move or resize one of them",
                        b.title, p.x, p.y, p.w, p.h
                    ),
                );
            }
        }
        errors
    }
}

impl Position {
    /// Whether the position is on the grid (its own errors are reported field by field).
    fn fits(&self) -> bool {
        self.x < GRID_COLUMNS
            && self.w >= 1
            && self.x + self.w <= GRID_COLUMNS
            && self.y <= MAX_ROWS
            && (1..=MAX_HEIGHT).contains(&self.h)
    }

    /// Whether the two share at least one square of the grid.
    fn overlaps(&self, o: &Position) -> bool {
        self.x < o.x + o.w && o.x < self.x + self.w && self.y < o.y + o.h && o.y < self.y + self.h
    }
}

/// A name or title: 1 to `max` characters, no control characters.
fn text(s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if s.trim().is_empty() || n > max {
        return Err(format!("must be 1 to {max} characters (got {n})"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not hold control characters (line breaks, tabs, escapes)".into());
    }
    Ok(())
}

fn is_color(c: &str) -> bool {
    c.strip_prefix('#')
        .is_some_and(|h| (h.len() == 3 || h.len() == 6) && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Parses and checks a body.
fn parse(body: &[u8]) -> Result<Dashboard, ApiError> {
    let d: Dashboard = parse_json(body)?;
    let errors = d.check();
    if errors.is_empty() {
        Ok(d)
    } else {
        Err(ApiError::fields(errors))
    }
}

/// A dashboard as the API answers it.
fn view(
    id: &str,
    d: &Dashboard,
    default: bool,
    created: Option<&str>,
    updated: Option<&str>,
) -> Value {
    json!({
        "id": id,
        "name": d.name,
        "default": default,
        "cells": d.cells,
        "created_at": created,
        "updated_at": updated,
    })
}

fn stored_view(r: &DashboardRecord) -> Result<Value, ApiError> {
    let d: Dashboard = serde_json::from_value(r.doc.clone()).map_err(ApiError::internal)?;
    Ok(view(
        &r.id,
        &d,
        false,
        Some(&r.created_at),
        Some(&r.updated_at),
    ))
}

fn config(state: &AppState) -> Arc<dyn ConfigStore> {
    state.store.clone()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)??)
}

/// The algorithms with Insights on in at least one version, by owner and name.
fn insights_algorithms(state: &AppState) -> Vec<AlgorithmPath> {
    state
        .runtime
        .catalog()
        .algorithms()
        .into_iter()
        .filter(|a| a.versions.iter().any(|v| v.settings.insights_enabled))
        .map(|a| AlgorithmPath::new(a.owner, a.name))
        .collect()
}

/// The default dashboard of `algorithm`, from the metrics it reported so far.
pub(crate) fn default_dashboard(state: &AppState, algorithm: &AlgorithmPath) -> Dashboard {
    let reported: BTreeSet<String> = state
        .series
        .metrics(algorithm)
        .into_iter()
        .flat_map(|v| v.metrics.into_iter().map(|m| m.metric))
        .filter(|m| m != "duration_milliseconds" && m != EXECUTIONS && m != FAILURES)
        .collect();
    let mut cells = Vec::new();
    let mut add = |title: String, metric: &str, function: Function, unit: Option<&str>| {
        let i = cells.len() as u32;
        cells.push(Cell {
            title,
            kind: Kind::GraphSingleStat,
            query: CellQuery {
                algorithm: algorithm.to_string(),
                metric: Some(metric.to_string()),
                function: Func(function),
                versions: Versions::All,
                window: None,
                every: Some(Duration("1m".parse().expect("1m is a window"))),
            },
            display: DisplayOptions {
                unit: unit.map(str::to_string),
                ..Default::default()
            },
            position: Position {
                x: (i % 2) * 6,
                y: (i / 2) * 4,
                w: 6,
                h: 4,
            },
        });
    };
    for m in &reported {
        add(format!("{m} (mean per minute)"), m, Function::Mean, None);
    }
    add(
        "Duration (mean per minute)".into(),
        "duration_milliseconds",
        Function::Mean,
        Some("ms"),
    );
    add(
        "Executions per minute".into(),
        EXECUTIONS,
        Function::Sum,
        None,
    );
    add("Failures per minute".into(), FAILURES, Function::Sum, None);
    Dashboard {
        name: format!("{algorithm} (default)"),
        cells,
    }
}

fn default_id(a: &AlgorithmPath) -> String {
    format!("{DEFAULT_PREFIX}{a}")
}

/// The algorithm a default id names, if it has Insights on.
fn default_of(state: &AppState, id: &str) -> Option<AlgorithmPath> {
    let path: AlgorithmPath = id.strip_prefix(DEFAULT_PREFIX)?.parse().ok()?;
    insights_algorithms(state).into_iter().find(|a| *a == path)
}

/// Every dashboard: the stored ones, then the defaults not replaced by a stored one.
pub(crate) async fn all(state: &AppState) -> Result<Vec<Value>, ApiError> {
    let store = config(state);
    let stored = blocking(move || store.dashboards()).await?;
    let mut out = Vec::new();
    for r in &stored {
        out.push(stored_view(r)?);
    }
    for a in insights_algorithms(state) {
        let id = default_id(&a);
        if stored.iter().any(|r| r.id == id) {
            continue;
        }
        out.push(view(&id, &default_dashboard(state, &a), true, None, None));
    }
    Ok(out)
}

/// One dashboard, stored or default.
pub(crate) async fn one(state: &AppState, id: &str) -> Result<Value, ApiError> {
    let store = config(state);
    let key = id.to_string();
    if let Some(r) = blocking(move || store.dashboard(&key)).await? {
        return stored_view(&r);
    }
    match default_of(state, id) {
        Some(a) => Ok(view(id, &default_dashboard(state, &a), true, None, None)),
        None => Err(not_found(id)),
    }
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id.chars().filter(|c| !c.is_control()).take(120).collect();
    ApiError::not_found(format!("there is no dashboard {shown:?}"))
}

/// `GET /v1/admin/dashboards`
pub(crate) async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let results: Vec<Value> = all(&state)
        .await?
        .into_iter()
        .map(|mut d| {
            let n = d["cells"].as_array().map_or(0, Vec::len);
            d["cell_count"] = n.into();
            d.as_object_mut()
                .expect("a view is an object")
                .remove("cells");
            d
        })
        .collect();
    Ok(Json(json!({ "results": results })).into_response())
}

/// `POST /v1/admin/dashboards`
pub(crate) async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let d = parse(&body)?;
    let store = config(&state);
    let now = record_time_now();
    let record = DashboardRecord {
        id: uuid::Uuid::new_v4().simple().to_string(),
        name: d.name.clone(),
        doc: serde_json::to_value(&d).map_err(ApiError::internal)?,
        created_at: now.clone(),
        updated_at: now,
    };
    let r = record.clone();
    blocking(move || {
        if store.dashboards()?.len() >= MAX_DASHBOARDS {
            return Ok(false);
        }
        store.insert_dashboard(&r).map(|()| true)
    })
    .await?
    .then_some(())
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "ConflictError",
            format!("at most {MAX_DASHBOARDS} dashboards may be stored; delete one first"),
        )
    })?;
    Ok((StatusCode::CREATED, Json(stored_view(&record)?)).into_response())
}

/// `GET /v1/admin/dashboards/{id}`
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    Ok(Json(one(&state, &id).await?).into_response())
}

/// `PUT /v1/admin/dashboards/{id}`: replaces a stored dashboard, or stores a default one
/// under its id.
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
    LimitedBody(body): LimitedBody,
) -> Result<Response, ApiError> {
    let d = parse(&body)?;
    let is_default = default_of(&state, &id).is_some();
    let store = config(&state);
    let now = record_time_now();
    let record = DashboardRecord {
        id: id.clone(),
        name: d.name.clone(),
        doc: serde_json::to_value(&d).map_err(ApiError::internal)?,
        created_at: now.clone(),
        updated_at: now,
    };
    let saved = blocking(move || {
        match store.update_dashboard(&record) {
            Err(StoreError::NotFound { .. }) if is_default => store.insert_dashboard(&record)?,
            other => other?,
        }
        store.dashboard(&record.id)
    })
    .await
    .map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            not_found(&id)
        } else {
            e
        }
    })?
    .ok_or_else(|| not_found(&id))?;
    Ok(Json(stored_view(&saved)?).into_response())
}

/// `DELETE /v1/admin/dashboards/{id}`: a default one cannot be deleted (only the stored
/// copy that replaced it).
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    _admin: Admin,
) -> Result<Response, ApiError> {
    let store = config(&state);
    let key = id.clone();
    match blocking(move || store.delete_dashboard(&key)).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) if e.status == StatusCode::NOT_FOUND && default_of(&state, &id).is_some() => {
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "ConflictError",
                "a default dashboard is computed from the algorithm's metrics and cannot be deleted",
            ))
        }
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(not_found(&id)),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell() -> Value {
        json!({
            "title": "Risk", "kind": "graph_single_stat",
            "query": {"algorithm": "acme/scorer", "metric": "risk_score", "fn": "p99", "versions": ["1.0.0"], "every": "5m"},
            "display": {"thresholds": [{"value": 0.5, "color": "#e0a000"}, {"value": 0.8, "color": "#b3261e"}], "unit": "", "decimals": 3},
            "position": {"x": 6, "y": 0, "w": 6, "h": 4},
        })
    }

    /// `cell()` moved down to `y`, so that cells do not overlap.
    fn at_row(y: u32) -> Value {
        let mut c = cell();
        c["position"]["y"] = y.into();
        c
    }

    fn error_of(body: Value) -> ApiError {
        parse(body.to_string().as_bytes()).unwrap_err()
    }

    #[test]
    fn a_good_dashboard_round_trips_as_it_was_sent() {
        let body = json!({"name": "Scorer", "cells": [cell()]});
        let d = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(d.cells[0].query.function.0, Function::P99);
        assert_eq!(serde_json::to_value(&d).unwrap(), body);
        let all = json!({"name": "S", "cells": [{"title": "t", "kind": "table", "query": {"algorithm": "a/b"}, "position": {"x": 0, "y": 0, "w": 12, "h": 3}}]});
        let d = parse(all.to_string().as_bytes()).unwrap();
        assert_eq!(d.cells[0].query.versions, Versions::All);
        assert_eq!(d.cells[0].query.function.0, Function::Mean);
    }

    #[test]
    fn every_error_names_its_field_and_the_limit() {
        let with = |path: &[&str], v: Value| {
            let mut c = at_row(8);
            let mut at = &mut c;
            for p in &path[..path.len() - 1] {
                at = match p.parse::<usize>() {
                    Ok(i) => &mut at[i],
                    Err(_) => &mut at[*p],
                };
            }
            at[path[path.len() - 1]] = v;
            json!({"name": "S", "cells": [at_row(0), at_row(4), c]})
        };
        let cases = [
            (
                with(&["query", "fn"], json!("average")),
                "cells[2].query.fn",
                "p99",
            ),
            (
                with(&["query", "every"], json!("5ms")),
                "cells[2].query.every",
                "whole seconds",
            ),
            (
                with(&["query", "window"], json!("1x")),
                "cells[2].query.window",
                "unit",
            ),
            (
                with(&["query", "versions"], json!("some")),
                "cells[2].query.versions",
                "\"all\"",
            ),
            (
                with(&["query", "versions"], json!([])),
                "cells[2].query.versions",
                "1 to 20",
            ),
            (
                with(&["query", "algorithm"], json!("scorer")),
                "cells[2].query.algorithm",
                "owner/name",
            ),
            (
                with(&["query", "metric"], Value::Null),
                "cells[2].query.metric",
                "required",
            ),
            (with(&["kind"], json!("pie")), "cells[2].kind", "graph"),
            (with(&["title"], json!("a\nb")), "cells[2].title", "control"),
            (
                with(&["title"], json!("x".repeat(101))),
                "cells[2].title",
                "100",
            ),
            (
                with(&["position", "x"], json!(12)),
                "cells[2].position.x",
                "0 to 11",
            ),
            (
                with(&["position", "w"], json!(7)),
                "cells[2].position.w",
                "x + w at most 12",
            ),
            (
                with(&["position", "h"], json!(0)),
                "cells[2].position.h",
                "1 to 24",
            ),
            (
                with(&["display", "decimals"], json!(11)),
                "cells[2].display.decimals",
                "0 to 10",
            ),
            (
                with(&["display", "thresholds", "1", "color"], json!("red")),
                "cells[2].display.thresholds[1].color",
                "#rrggbb",
            ),
            (
                with(&["display", "extra"], json!(1)),
                "cells[2].display.extra",
                "unknown field",
            ),
            (json!({"name": "", "cells": []}), "name", "1 to 100"),
            (
                json!({"name": "a\u{1b}[31m", "cells": []}),
                "name",
                "control",
            ),
            (
                json!({"name": "S", "cells": vec![cell(); 51]}),
                "cells",
                "at most 50",
            ),
            (json!({"name": "S", "owner": "x"}), "owner", "unknown field"),
        ];
        for (body, field, says) in cases {
            let e = error_of(body);
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{field}");
            assert_eq!(e.field.as_deref(), Some(field), "{}", e.message);
            assert!(e.message.contains(says), "{field}: {}", e.message);
        }
    }

    #[test]
    fn cells_on_the_same_squares_are_refused_naming_both() {
        // Side by side and one above the other: no square shared.
        let mut left = cell();
        left["position"] = json!({"x": 0, "y": 0, "w": 6, "h": 4});
        let below = at_row(4);
        let body = json!({"name": "S", "cells": [left.clone(), cell(), below.clone()]});
        assert!(parse(body.to_string().as_bytes()).is_ok());
        // Column 6 of rows 0 to 3 shared by the first and the third.
        let mut wide = left.clone();
        wide["title"] = "Wide".into();
        wide["position"]["w"] = 7.into();
        let e = error_of(json!({"name": "S", "cells": [cell(), below, wide]}));
        let fields: Vec<&str> = e.fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(
            fields,
            ["cells[0].position", "cells[2].position"],
            "{}",
            e.message
        );
        assert!(
            e.fields[0]
                .message
                .contains(r#"overlaps cells[2] ("Wide", at x 0, y 0, w 7, h 4)"#),
            "{}",
            e.fields[0].message
        );
        assert!(e.fields[1].message.contains("overlaps cells[0]"));
        // However many overlap, one error per cell.
        let e = error_of(json!({"name": "S", "cells": vec![cell(); 5]}));
        assert_eq!(e.fields.len(), 5, "{}", e.message);
        // A cell off the grid has its own error, not an overlap.
        let mut off = cell();
        off["position"]["x"] = 12.into();
        let e = error_of(json!({"name": "S", "cells": [cell(), off]}));
        assert!(
            e.fields
                .iter()
                .all(|f| f.field.starts_with("cells[1].position.")),
            "{}",
            e.message
        );
        assert_eq!(e.field.as_deref(), Some("cells[1].position.x"));
    }

    #[test]
    fn a_gauge_needs_its_bounds_and_min_is_below_max() {
        let mut c = cell();
        c["kind"] = "gauge".into();
        let e = error_of(json!({"name": "S", "cells": [c.clone()]}));
        assert_eq!(e.field.as_deref(), Some("cells[0].display.max"));
        c["display"]["min"] = 2.0.into();
        c["display"]["max"] = 1.0.into();
        let e = error_of(json!({"name": "S", "cells": [c]}));
        assert_eq!(e.field.as_deref(), Some("cells[0].display.min"));
    }
}
