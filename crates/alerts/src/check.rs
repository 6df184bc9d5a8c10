//! Checks: what is evaluated, how often, and which level each value gets.
//!
//! A **threshold** check aggregates one metric with a function over a window that slides with
//! its schedule (`window` and `every` are independent, unlike InfluxDB's, influxdb#17439), and
//! gives each series (an algorithm's version) the first level whose threshold matches, from
//! `crit` down; a value that matches none is `ok`. A **deadman** check gives its level to a
//! series that has sent no payload for `time_since`, and keeps it until one arrives.

use std::collections::BTreeMap;

use insights_series::{AlgorithmPath, Function};
use serde_json::{Value, json};

use crate::doc::{Reader, join};
use crate::error::{AlertError, FieldError};
use crate::level::Level;
use crate::span::Span;
use crate::template::{DEFAULT_CHECK_MESSAGE, DEFAULT_DEADMAN_MESSAGE, Template};

pub(crate) const MAX_NAME: usize = 200;
pub(crate) const MAX_TAGS: usize = 20;
pub(crate) const MAX_VERSIONS: usize = 100;

/// Which algorithms a check watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlgorithmSelector {
    /// Every algorithm with Insights on.
    All,
    One(AlgorithmPath),
}

impl AlgorithmSelector {
    pub fn matches(&self, a: &AlgorithmPath) -> bool {
        match self {
            AlgorithmSelector::All => true,
            AlgorithmSelector::One(b) => a == b,
        }
    }
}

impl std::fmt::Display for AlgorithmSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AlgorithmSelector::All => f.write_str("*"),
            AlgorithmSelector::One(a) => write!(f, "{}/{}", a.owner, a.name),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    Greater(f64),
    Lesser(f64),
    InsideRange { min: f64, max: f64 },
    OutsideRange { min: f64, max: f64 },
}

impl Comparison {
    /// Strict comparisons, as InfluxDB's.
    pub fn matches(self, v: f64) -> bool {
        match self {
            Comparison::Greater(t) => v > t,
            Comparison::Lesser(t) => v < t,
            Comparison::InsideRange { min, max } => min < v && v < max,
            Comparison::OutsideRange { min, max } => v < min || v > max,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub level: Level,
    pub comparison: Comparison,
    /// Hysteresis: a series at this level keeps it while the value is still beyond
    /// `recovery` (for `greater` and `lesser` only), so that a value hovering around the
    /// threshold does not flap.
    pub recovery: Option<f64>,
}

impl Threshold {
    fn holds(&self, v: f64) -> bool {
        match (self.comparison, self.recovery) {
            (Comparison::Greater(_), Some(r)) => v > r,
            (Comparison::Lesser(_), Some(r)) => v < r,
            _ => self.comparison.matches(v),
        }
    }
}

/// What a window without data yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoData {
    /// The series keeps its level (the default).
    Keep,
    Level(Level),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThresholdCheck {
    pub metric: String,
    pub function: Function,
    pub window: Span,
    /// Ordered from the highest level down.
    pub thresholds: Vec<Threshold>,
    /// A level above the current one must hold this long before it is reported.
    pub pending_for: Span,
    pub no_data: NoData,
}

impl ThresholdCheck {
    /// The level of `value` for a series now at `current`: the first threshold that
    /// matches, from `crit` down; the current level's threshold with a recovery value keeps
    /// matching until the value passes it; otherwise `ok`.
    pub fn classify(&self, value: f64, current: Level) -> Level {
        for t in &self.thresholds {
            if t.comparison.matches(value) || (t.level == current && t.holds(value)) {
                return t.level;
            }
        }
        Level::Ok
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeadmanCheck {
    pub time_since: Span,
    pub level: Level,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Threshold(ThresholdCheck),
    Deadman(DeadmanCheck),
}

/// A check as validated; `document` is its normalized JSON form.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: String,
    pub name: String,
    pub algorithm: AlgorithmSelector,
    /// Only these versions; every version separately when empty.
    pub versions: Vec<String>,
    pub kind: CheckKind,
    pub every: Span,
    pub offset: Span,
    pub message: Template,
    pub tags: BTreeMap<String, String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Check {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            CheckKind::Threshold(_) => "threshold",
            CheckKind::Deadman(_) => "deadman",
        }
    }

    /// The check's document, as the API shows it and the database keeps it.
    pub fn document(&self) -> Value {
        let mut query = json!({ "algorithm": self.algorithm.to_string() });
        if !self.versions.is_empty() {
            query["versions"] = json!(self.versions);
        }
        let mut doc = json!({
            "id": self.id,
            "name": self.name,
            "kind": self.kind_name(),
            "every": self.every,
            "offset": self.offset,
            "message": self.message.source(),
            "tags": self.tags,
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        });
        match &self.kind {
            CheckKind::Threshold(t) => {
                query["metric"] = json!(t.metric);
                query["fn"] = json!(t.function.as_str());
                query["window"] = json!(t.window);
                doc["thresholds"] = t
                    .thresholds
                    .iter()
                    .map(|th| {
                        let mut v = match th.comparison {
                            Comparison::Greater(x) => json!({"type": "greater", "value": x}),
                            Comparison::Lesser(x) => json!({"type": "lesser", "value": x}),
                            Comparison::InsideRange { min, max } => {
                                json!({"type": "inside_range", "min": min, "max": max})
                            }
                            Comparison::OutsideRange { min, max } => {
                                json!({"type": "outside_range", "min": min, "max": max})
                            }
                        };
                        v["level"] = json!(th.level);
                        if let Some(r) = th.recovery {
                            v["recovery"] = json!(r);
                        }
                        v
                    })
                    .collect();
                doc["pending_for"] = json!(t.pending_for);
                doc["no_data"] = match t.no_data {
                    NoData::Keep => json!("keep"),
                    NoData::Level(l) => json!(l),
                };
            }
            CheckKind::Deadman(d) => {
                doc["time_since"] = json!(d.time_since);
                doc["level"] = json!(d.level);
            }
        }
        doc["query"] = query;
        doc
    }

    /// Validates a check document as a client sent it. `id` and the times come from the
    /// caller (new or stored), never from the body.
    pub fn from_document(
        body: &Value,
        id: String,
        created_at: String,
        updated_at: String,
    ) -> Result<Check, AlertError> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut r = Reader {
            errors: &mut errors,
        };
        let Some(m) = r.object(body, "") else {
            return Err(AlertError::Invalid(errors));
        };
        r.known(
            m,
            "",
            &[
                "id",
                "name",
                "kind",
                "query",
                "every",
                "offset",
                "thresholds",
                "pending_for",
                "no_data",
                "time_since",
                "level",
                "message",
                "tags",
                "enabled",
                "created_at",
                "updated_at",
            ],
        );
        let name = r.required_string(m, "", "name", MAX_NAME);
        let kind = r.required_string(m, "", "kind", 20);
        let every = r.span(m, "", "every", Span::secs(10), Span::secs(86_400));
        if every.is_none() && m.get("every").is_none() {
            r.fail("every", "is required, e.g. \"1m\"");
        }
        let offset = r
            .span(m, "", "offset", Span::secs(0), Span::secs(86_400))
            .unwrap_or_default();
        if let Some(e) = every
            && offset >= e
        {
            r.fail(
                "offset",
                format!("is {offset}; it must be shorter than every ({e})"),
            );
        }
        let tags = r.string_map(m, "", "tags", MAX_TAGS, 64, 256);
        let enabled = match m.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                r.fail("enabled", "must be true or false");
                true
            }
        };

        let (mut algorithm, mut versions, mut metric, mut function, mut window) =
            (None, Vec::new(), None, None, None);
        match m.get("query") {
            None | Some(Value::Null) => r.fail("query", "is required"),
            Some(q) => {
                if let Some(q) = r.object(q, "query") {
                    r.known(
                        q,
                        "query",
                        &["algorithm", "metric", "fn", "window", "versions"],
                    );
                    algorithm = r
                        .required_string(q, "query", "algorithm", 200)
                        .and_then(|a| match parse_selector(&a) {
                            Ok(s) => Some(s),
                            Err(e) => {
                                r.fail("query.algorithm", e);
                                None
                            }
                        });
                    versions = r
                        .strings(q, "query", "versions", MAX_VERSIONS, 100)
                        .unwrap_or_default();
                    if kind.as_deref() == Some("threshold") {
                        metric = r.required_string(q, "query", "metric", 200);
                        function = match q.get("fn") {
                            None | Some(Value::Null) => Some(Function::Mean),
                            Some(Value::String(s)) => match s.parse::<Function>() {
                                Ok(f) => Some(f),
                                Err(_) => {
                                    r.fail(
                                        "query.fn",
                                        "must be one of mean, min, max, sum, count, last, p50, p90, p95, p99",
                                    );
                                    None
                                }
                            },
                            Some(_) => {
                                r.fail("query.fn", "must be a string");
                                None
                            }
                        };
                        window = r.span(
                            q,
                            "query",
                            "window",
                            Span::secs(10),
                            Span::secs(30 * 86_400),
                        );
                    } else {
                        for k in ["metric", "fn", "window"] {
                            if q.contains_key(k) {
                                r.fail(
                                    join("query", k),
                                    "belongs to threshold checks; a deadman check watches payloads",
                                );
                            }
                        }
                    }
                }
            }
        }

        let check_kind = match kind.as_deref() {
            Some("threshold") => {
                for k in ["time_since", "level"] {
                    if m.contains_key(k) {
                        r.fail(k, "belongs to deadman checks");
                    }
                }
                let thresholds = read_thresholds(&mut r, m);
                let pending_for = r
                    .span(m, "", "pending_for", Span::secs(0), Span::secs(86_400))
                    .unwrap_or_default();
                let no_data = match m.get("no_data") {
                    None | Some(Value::Null) => NoData::Keep,
                    Some(Value::String(s)) if s == "keep" => NoData::Keep,
                    Some(Value::String(s)) => match s.parse::<Level>() {
                        Ok(l) => NoData::Level(l),
                        Err(_) => {
                            r.fail("no_data", "must be \"keep\" or one of crit, warn, info, ok");
                            NoData::Keep
                        }
                    },
                    Some(_) => {
                        r.fail("no_data", "must be a string");
                        NoData::Keep
                    }
                };
                match (metric, function, thresholds) {
                    (Some(metric), Some(function), Some(thresholds)) => {
                        Some(CheckKind::Threshold(ThresholdCheck {
                            metric,
                            function,
                            window: window.or(every).unwrap_or(Span::secs(60)),
                            thresholds,
                            pending_for,
                            no_data,
                        }))
                    }
                    _ => None,
                }
            }
            Some("deadman") => {
                for k in ["thresholds", "pending_for", "no_data"] {
                    if m.contains_key(k) {
                        r.fail(k, "belongs to threshold checks");
                    }
                }
                let time_since =
                    r.span(m, "", "time_since", Span::secs(10), Span::secs(30 * 86_400));
                if m.get("time_since").is_none() {
                    r.fail("time_since", "is required, e.g. \"5m\"");
                }
                let level = match m.get("level") {
                    None | Some(Value::Null) => Some(Level::Crit),
                    Some(Value::String(s)) => match s.parse::<Level>() {
                        Ok(Level::Ok) => {
                            r.fail("level", "must be a problem level: crit, warn or info");
                            None
                        }
                        Ok(l) => Some(l),
                        Err(e) => {
                            r.fail("level", e);
                            None
                        }
                    },
                    Some(_) => {
                        r.fail("level", "must be a string");
                        None
                    }
                };
                match (time_since, level) {
                    (Some(time_since), Some(level)) => {
                        Some(CheckKind::Deadman(DeadmanCheck { time_since, level }))
                    }
                    _ => None,
                }
            }
            Some(_) => {
                r.fail("kind", "must be \"threshold\" or \"deadman\"");
                None
            }
            None => None,
        };

        let default_message = match check_kind {
            Some(CheckKind::Deadman(_)) => DEFAULT_DEADMAN_MESSAGE,
            _ => DEFAULT_CHECK_MESSAGE,
        };
        let message = match r.string(m, "", "message", crate::template::MAX_TEMPLATE_BYTES) {
            Some(s) => match Template::parse(&s, Some(&tags)) {
                Ok(t) => Some(t),
                Err(e) => {
                    r.fail("message", e);
                    None
                }
            },
            None => Some(Template::parse(default_message, None).expect("the default parses")),
        };

        match (name, algorithm, check_kind, every, message) {
            (Some(name), Some(algorithm), Some(kind), Some(every), Some(message))
                if errors.is_empty() =>
            {
                Ok(Check {
                    id,
                    name,
                    algorithm,
                    versions,
                    kind,
                    every,
                    offset,
                    message,
                    tags,
                    enabled,
                    created_at,
                    updated_at,
                })
            }
            _ => {
                if errors.is_empty() {
                    errors.push(FieldError::new("body", "is incomplete"));
                }
                Err(AlertError::Invalid(errors))
            }
        }
    }
}

pub(crate) fn parse_selector(s: &str) -> Result<AlgorithmSelector, String> {
    if s == "*" {
        return Ok(AlgorithmSelector::All);
    }
    let valid = |p: &str| {
        !p.is_empty()
            && p.len() <= 100
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    match s.split_once('/') {
        Some((owner, name)) if valid(owner) && valid(name) => {
            Ok(AlgorithmSelector::One(AlgorithmPath::new(owner, name)))
        }
        _ => Err("must be \"owner/name\" or \"*\" (every algorithm with Insights on)".into()),
    }
}

fn read_thresholds(
    r: &mut Reader<'_>,
    m: &serde_json::Map<String, Value>,
) -> Option<Vec<Threshold>> {
    let items = match m.get("thresholds") {
        Some(Value::Array(a)) if !a.is_empty() && a.len() <= 4 => a,
        Some(Value::Array(_)) => {
            r.fail(
                "thresholds",
                "must hold 1 to 4 thresholds, at most one per level",
            );
            return None;
        }
        None | Some(Value::Null) => {
            r.fail(
                "thresholds",
                "is required: at least one {\"level\", \"type\", \"value\"}",
            );
            return None;
        }
        Some(_) => {
            r.fail("thresholds", "must be an array");
            return None;
        }
    };
    let before = r.errors.len();
    let mut out: Vec<Threshold> = Vec::new();
    for (i, t) in items.iter().enumerate() {
        let path = format!("thresholds[{i}]");
        let Some(t) = r.object(t, &path) else {
            continue;
        };
        r.known(
            t,
            &path,
            &["level", "type", "value", "min", "max", "recovery"],
        );
        let level = match t
            .get("level")
            .and_then(Value::as_str)
            .map(str::parse::<Level>)
        {
            Some(Ok(l)) => Some(l),
            _ => {
                r.fail(join(&path, "level"), "must be one of crit, warn, info, ok");
                None
            }
        };
        if let Some(l) = level
            && out.iter().any(|o| o.level == l)
        {
            r.fail(
                join(&path, "level"),
                format!("{l} has a threshold already; one per level"),
            );
        }
        let value = r.number(t, &path, "value");
        let min = r.number(t, &path, "min");
        let max = r.number(t, &path, "max");
        let recovery = r.number(t, &path, "recovery");
        let ty = t.get("type").and_then(Value::as_str);
        let comparison = match ty {
            Some("greater") | Some("lesser") => match value {
                Some(v) => Some(if ty == Some("greater") {
                    Comparison::Greater(v)
                } else {
                    Comparison::Lesser(v)
                }),
                None => {
                    r.fail(join(&path, "value"), "is required for greater and lesser");
                    None
                }
            },
            Some("inside_range") | Some("outside_range") => match (min, max) {
                (Some(min), Some(max)) if min < max => Some(if ty == Some("inside_range") {
                    Comparison::InsideRange { min, max }
                } else {
                    Comparison::OutsideRange { min, max }
                }),
                (Some(_), Some(_)) => {
                    r.fail(join(&path, "min"), "must be below max");
                    None
                }
                _ => {
                    r.fail(join(&path, "min"), "min and max are required for ranges");
                    None
                }
            },
            _ => {
                r.fail(
                    join(&path, "type"),
                    "must be one of greater, lesser, inside_range, outside_range",
                );
                None
            }
        };
        match (comparison, recovery) {
            (Some(Comparison::Greater(v)), Some(rv)) if rv >= v => r.fail(
                join(&path, "recovery"),
                format!("must be below the threshold's value {v}: a series leaves the level when the value falls to it"),
            ),
            (Some(Comparison::Lesser(v)), Some(rv)) if rv <= v => r.fail(
                join(&path, "recovery"),
                format!("must be above the threshold's value {v}: a series leaves the level when the value rises to it"),
            ),
            (Some(Comparison::InsideRange { .. } | Comparison::OutsideRange { .. }), Some(_)) => {
                r.fail(join(&path, "recovery"), "applies to greater and lesser thresholds only")
            }
            _ => {}
        }
        if let (Some(level), Some(comparison)) = (level, comparison) {
            out.push(Threshold {
                level,
                comparison,
                recovery,
            });
        }
    }
    if r.errors.len() > before {
        return None;
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.level));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<Check, AlertError> {
        Check::from_document(&v, "c1".into(), "t".into(), "t".into())
    }

    fn fields(e: AlertError) -> Vec<String> {
        match e {
            AlertError::Invalid(f) => f.into_iter().map(|f| f.field).collect(),
            other => panic!("{other}"),
        }
    }

    fn seed() -> Value {
        json!({
            "name": "Risk score high", "kind": "threshold",
            "query": {"algorithm": "demo/credit", "metric": "risk_score", "fn": "mean", "window": "5m", "versions": ["1.0.0"]},
            "every": "1m", "offset": "10s",
            "thresholds": [{"level": "crit", "type": "greater", "value": 0.7},
                           {"level": "warn", "type": "inside_range", "min": 0.5, "max": 0.7}],
            "pending_for": "2m", "message": "{{check}} {{level}} {{tags.team}}", "tags": {"team": "ml"}
        })
    }

    #[test]
    fn the_issue_example_round_trips() {
        let c = parse(seed()).unwrap();
        let doc = c.document();
        assert_eq!(doc["query"]["window"], "5m");
        assert_eq!(doc["thresholds"][0]["level"], "crit");
        let again = parse(doc.clone()).unwrap();
        assert_eq!(again.document(), doc);
    }

    #[test]
    fn levels_are_strict_first_match_from_crit_down_and_unmatched_is_ok() {
        let CheckKind::Threshold(t) = parse(seed()).unwrap().kind else {
            unreachable!()
        };
        assert_eq!(t.classify(0.71, Level::Ok), Level::Crit);
        assert_eq!(
            t.classify(0.7, Level::Ok),
            Level::Ok,
            "0.7 is neither > 0.7 nor < 0.7"
        );
        assert_eq!(t.classify(0.6, Level::Ok), Level::Warn);
        assert_eq!(t.classify(0.5, Level::Ok), Level::Ok);
        assert_eq!(t.classify(0.1, Level::Crit), Level::Ok);
    }

    #[test]
    fn a_recovery_value_keeps_the_level_until_the_value_passes_it() {
        let mut doc = seed();
        doc["thresholds"] =
            json!([{"level": "crit", "type": "greater", "value": 0.7, "recovery": 0.6}]);
        let CheckKind::Threshold(t) = parse(doc).unwrap().kind else {
            unreachable!()
        };
        assert_eq!(t.classify(0.65, Level::Ok), Level::Ok);
        assert_eq!(t.classify(0.65, Level::Crit), Level::Crit);
        assert_eq!(t.classify(0.6, Level::Crit), Level::Ok);
    }

    #[test]
    fn every_error_names_its_field() {
        let mut doc = seed();
        doc["every"] = json!("5s");
        doc["offset"] = json!("2m");
        doc["query"]["fn"] = json!("avg");
        doc["thresholds"][1]["min"] = json!(0.9);
        doc["message"] = json!("{{valeu}}");
        doc["colour"] = json!(1);
        let f = fields(parse(doc).unwrap_err());
        for want in [
            "every",
            "query.fn",
            "thresholds[1].min",
            "message",
            "colour",
        ] {
            assert!(f.iter().any(|x| x == want), "{want} not in {f:?}");
        }
        let f = fields(
            parse(
                json!({"name": "d", "kind": "deadman", "query": {"algorithm": "a"}, "every": "1m"}),
            )
            .unwrap_err(),
        );
        assert!(f.contains(&"query.algorithm".to_string()), "{f:?}");
        assert!(f.contains(&"time_since".to_string()), "{f:?}");
        let mut doc = seed();
        doc["message"] = json!("{{tags.owner}}");
        let e = parse(doc).unwrap_err().to_string();
        assert!(e.contains("`owner`"), "{e}");
    }

    #[test]
    fn a_deadman_check_defaults_to_crit() {
        let c = parse(json!({"name": "silent", "kind": "deadman", "query": {"algorithm": "*"}, "every": "1m", "time_since": "5m"})).unwrap();
        assert_eq!(
            c.kind,
            CheckKind::Deadman(DeadmanCheck {
                time_since: Span::secs(300),
                level: Level::Crit
            })
        );
        assert_eq!(c.algorithm, AlgorithmSelector::All);
    }
}
