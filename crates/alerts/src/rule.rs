//! Notification rules: which level changes of which checks go to which endpoint, how often.
//!
//! A rule is matched against each status change as the check writes it, in the same
//! transaction as the series' new state, so a change is seen exactly once whatever the
//! schedules (InfluxDB compares statuses inside a time window and misses or repeats them,
//! influxdb#17809, #19711). `{"is": "crit"}` notifies when a series enters the level and then,
//! while it stays there, once per `repeat_every`; `limit` caps what a rule sends per period,
//! and what it suppressed is recorded and counted.

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::{Value, json};

use crate::doc::{Reader, join};
use crate::error::{AlertError, FieldError};
use crate::level::Level;
use crate::span::Span;
use crate::template::Template;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum When {
    /// While a series is at this level (entering it, then every `repeat_every`).
    Is(Level),
    /// A change from one level (`None`: any) to another (`None`: any).
    Change {
        from: Option<Level>,
        to: Option<Level>,
    },
}

impl When {
    pub fn matches_change(&self, from: Level, to: Level) -> bool {
        match *self {
            When::Is(l) => to == l,
            When::Change { from: f, to: t } => {
                f.is_none_or(|f| f == from) && t.is_none_or(|t| t == to)
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum TagOp {
    Equal(String),
    NotEqual(String),
    Regex(Regex),
    NotRegex(Regex),
}

#[derive(Debug, Clone)]
pub struct TagRule {
    pub key: String,
    pub op: TagOp,
}

impl TagRule {
    /// A tag the series does not have matches `not_equal` and `not_regex` only.
    pub fn matches(&self, tags: &BTreeMap<String, String>) -> bool {
        let v = tags.get(&self.key);
        match &self.op {
            TagOp::Equal(x) => v == Some(x),
            TagOp::NotEqual(x) => v != Some(x),
            TagOp::Regex(re) => v.is_some_and(|v| re.is_match(v)),
            TagOp::NotRegex(re) => !v.is_some_and(|v| re.is_match(v)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub count: u32,
    pub every: Span,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    /// These checks; every check when `None`.
    pub checks: Option<Vec<String>>,
    pub every: Span,
    pub when: Vec<When>,
    pub tags: Vec<TagRule>,
    /// `None`: a persistent level is notified once, when it is entered.
    pub repeat_every: Option<Span>,
    pub limit: Option<Limit>,
    /// `None`: the check's message.
    pub message: Option<Template>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl Rule {
    pub fn applies_to(&self, check: &str) -> bool {
        self.checks
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x == check))
    }

    /// Several `when` entries are OR-ed; tag rules are AND-ed.
    pub fn matches_change(&self, from: Level, to: Level, tags: &BTreeMap<String, String>) -> bool {
        from != to
            && self.when.iter().any(|w| w.matches_change(from, to))
            && self.tags.iter().all(|t| t.matches(tags))
    }

    /// Whether a series that stays at `level` is to be notified again.
    pub fn repeats(&self, level: Level, tags: &BTreeMap<String, String>) -> Option<Span> {
        let every = self.repeat_every?;
        (self.when.contains(&When::Is(level)) && self.tags.iter().all(|t| t.matches(tags)))
            .then_some(every)
    }

    pub fn document(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "endpoint": self.endpoint,
            "checks": self.checks,
            "every": self.every,
            "when": self.when.iter().map(|w| match w {
                When::Is(l) => json!({"is": l}),
                When::Change { from, to } => json!({
                    "from": from.map_or("any", Level::as_str),
                    "to": to.map_or("any", Level::as_str),
                }),
            }).collect::<Vec<_>>(),
            "tags": self.tags.iter().map(|t| {
                let (op, value) = match &t.op {
                    TagOp::Equal(v) => ("equal", v.clone()),
                    TagOp::NotEqual(v) => ("not_equal", v.clone()),
                    TagOp::Regex(r) => ("regex", r.as_str().to_string()),
                    TagOp::NotRegex(r) => ("not_regex", r.as_str().to_string()),
                };
                json!({"key": t.key, "op": op, "value": value})
            }).collect::<Vec<_>>(),
            "repeat_every": self.repeat_every,
            "limit": self.limit.map(|l| json!({"count": l.count, "every": l.every})),
            "message": self.message.as_ref().map(Template::source),
            "enabled": self.enabled,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }

    pub fn from_document(
        body: &Value,
        id: String,
        created_at: String,
        updated_at: String,
    ) -> Result<Rule, AlertError> {
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
                "endpoint",
                "checks",
                "every",
                "when",
                "tags",
                "repeat_every",
                "limit",
                "message",
                "enabled",
                "created_at",
                "updated_at",
            ],
        );
        let name = r.required_string(m, "", "name", 200);
        let endpoint = r.required_string(m, "", "endpoint", 100);
        let checks = match m.get("checks") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s == "*" => None,
            Some(_) => r.strings(m, "", "checks", 1000, 100),
        };
        let every = r
            .span(m, "", "every", Span::secs(10), Span::secs(86_400))
            .unwrap_or(Span::secs(60));
        let mut when = Vec::new();
        match m.get("when") {
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 16 => {
                for (i, w) in items.iter().enumerate() {
                    let path = format!("when[{i}]");
                    let Some(w) = r.object(w, &path) else { continue };
                    r.known(w, &path, &["is", "from", "to"]);
                    let level = |r: &mut Reader<'_>, k: &str, any: bool| -> Option<Option<Level>> {
                        match w.get(k).and_then(Value::as_str) {
                            Some("any") if any => Some(None),
                            Some(s) => match s.parse::<Level>() {
                                Ok(l) => Some(Some(l)),
                                Err(_) => {
                                    r.fail(
                                        join(&path, k),
                                        if any {
                                            "must be one of crit, warn, info, ok, any"
                                        } else {
                                            "must be one of crit, warn, info, ok"
                                        },
                                    );
                                    None
                                }
                            },
                            None => {
                                r.fail(join(&path, k), "is required");
                                None
                            }
                        }
                    };
                    if w.contains_key("is") {
                        if w.contains_key("from") || w.contains_key("to") {
                            r.fail(&path, "is either {\"is\": level} or {\"from\": level, \"to\": level}");
                        } else if let Some(Some(l)) = level(&mut r, "is", false) {
                            when.push(When::Is(l));
                        }
                    } else {
                        let from = level(&mut r, "from", true);
                        let to = level(&mut r, "to", true);
                        if let (Some(from), Some(to)) = (from, to) {
                            if from.is_some() && from == to {
                                r.fail(join(&path, "to"), "must differ from `from`: a change goes somewhere");
                            }
                            when.push(When::Change { from, to });
                        }
                    }
                }
            }
            None | Some(Value::Null) => r.fail(
                "when",
                "is required, e.g. [{\"from\": \"ok\", \"to\": \"crit\"}, {\"from\": \"any\", \"to\": \"ok\"}]",
            ),
            Some(_) => r.fail("when", "must be an array of 1 to 16 status rules"),
        }
        let mut tags = Vec::new();
        match m.get("tags") {
            None | Some(Value::Null) => {}
            Some(Value::Array(items)) if items.len() <= 20 => {
                for (i, t) in items.iter().enumerate() {
                    let path = format!("tags[{i}]");
                    let Some(t) = r.object(t, &path) else {
                        continue;
                    };
                    r.known(t, &path, &["key", "op", "value"]);
                    let key = r.required_string(t, &path, "key", 64);
                    let value = match t.get("value") {
                        Some(Value::String(s)) if s.len() <= 256 => Some(s.clone()),
                        _ => {
                            r.fail(
                                join(&path, "value"),
                                "must be a string of at most 256 bytes",
                            );
                            None
                        }
                    };
                    let op = match (
                        t.get("op").and_then(Value::as_str).unwrap_or("equal"),
                        value,
                    ) {
                        (_, None) => None,
                        ("equal", Some(v)) => Some(TagOp::Equal(v)),
                        ("not_equal", Some(v)) => Some(TagOp::NotEqual(v)),
                        (op @ ("regex" | "not_regex"), Some(v)) => {
                            match regex::RegexBuilder::new(&v).size_limit(1 << 16).build() {
                                Ok(re) if op == "regex" => Some(TagOp::Regex(re)),
                                Ok(re) => Some(TagOp::NotRegex(re)),
                                Err(e) => {
                                    r.fail(
                                        join(&path, "value"),
                                        format!("is not a valid regular expression: {e}"),
                                    );
                                    None
                                }
                            }
                        }
                        _ => {
                            r.fail(
                                join(&path, "op"),
                                "must be equal, not_equal, regex or not_regex",
                            );
                            None
                        }
                    };
                    if let (Some(key), Some(op)) = (key, op) {
                        tags.push(TagRule { key, op });
                    }
                }
            }
            Some(_) => r.fail(
                "tags",
                "must be an array of at most 20 {\"key\", \"op\", \"value\"}",
            ),
        }
        let repeat_every = r.span(
            m,
            "",
            "repeat_every",
            Span::secs(0),
            Span::secs(30 * 86_400),
        );
        let repeat_every = repeat_every.filter(|s| !s.is_zero());
        if let Some(rep) = repeat_every
            && rep < every
        {
            r.fail(
                "repeat_every",
                format!("is {rep}; at least the rule's every ({every})"),
            );
        }
        let limit = match m.get("limit") {
            None | Some(Value::Null) => None,
            Some(l) => r.object(l, "limit").and_then(|l| {
                r.known(l, "limit", &["count", "every"]);
                let count = match l.get("count").and_then(Value::as_u64) {
                    Some(c @ 1..=100_000) => Some(c as u32),
                    _ => {
                        r.fail("limit.count", "must be a whole number, 1 to 100000");
                        None
                    }
                };
                let every = r.span(l, "limit", "every", Span::secs(10), Span::secs(30 * 86_400));
                if l.get("every").is_none() {
                    r.fail("limit.every", "is required, e.g. \"1h\"");
                }
                Some(Limit {
                    count: count?,
                    every: every?,
                })
            }),
        };
        let message = match r.string(m, "", "message", crate::template::MAX_TEMPLATE_BYTES) {
            Some(s) => match Template::parse(&s, None) {
                Ok(t) => Some(t),
                Err(e) => {
                    r.fail("message", e);
                    None
                }
            },
            None => None,
        };
        let enabled = m.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        match (name, endpoint) {
            (Some(name), Some(endpoint)) if errors.is_empty() => Ok(Rule {
                id,
                name,
                endpoint,
                checks,
                every,
                when,
                tags,
                repeat_every,
                limit,
                message,
                enabled,
                created_at,
                updated_at,
            }),
            _ => {
                if errors.is_empty() {
                    errors.push(FieldError::new("body", "is incomplete"));
                }
                Err(AlertError::Invalid(errors))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Result<Rule, AlertError> {
        Rule::from_document(&v, "r1".into(), "t".into(), "t".into())
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn status_rules_are_or_ed_and_tag_rules_and_ed() {
        let r = rule(json!({
            "name": "to slack", "endpoint": "e1",
            "when": [{"is": "crit"}, {"from": "any", "to": "ok"}],
            "tags": [{"key": "team", "op": "equal", "value": "ml"},
                     {"key": "version", "op": "regex", "value": "^1\\."},
                     {"key": "env", "op": "not_equal", "value": "dev"}],
        }))
        .unwrap();
        let ml = tags(&[("team", "ml"), ("version", "1.2.0")]);
        assert!(r.matches_change(Level::Ok, Level::Crit, &ml));
        assert!(r.matches_change(Level::Warn, Level::Crit, &ml));
        assert!(r.matches_change(Level::Crit, Level::Ok, &ml));
        assert!(!r.matches_change(Level::Ok, Level::Warn, &ml));
        assert!(!r.matches_change(Level::Crit, Level::Crit, &ml));
        assert!(!r.matches_change(
            Level::Ok,
            Level::Crit,
            &tags(&[("team", "ml"), ("version", "2.0.0")])
        ));
        assert!(!r.matches_change(
            Level::Ok,
            Level::Crit,
            &tags(&[("team", "ml"), ("version", "1.0.0"), ("env", "dev")])
        ));
        assert!(
            r.repeats(Level::Crit, &ml).is_none(),
            "no repeat_every: once"
        );
    }

    #[test]
    fn errors_name_their_fields() {
        let e = rule(json!({
            "name": "x", "endpoint": "e",
            "when": [{"is": "critical"}, {"from": "ok", "to": "ok"}],
            "tags": [{"key": "team", "op": "like", "value": "m"}, {"key": "t", "op": "regex", "value": "("}],
            "repeat_every": "5s", "limit": {"count": 0}
        }))
        .unwrap_err()
        .to_string();
        for f in [
            "when[0].is",
            "when[1].to",
            "tags[0].op",
            "tags[1].value",
            "repeat_every",
            "limit.count",
            "limit.every",
        ] {
            assert!(e.contains(f), "{f} in {e}");
        }
    }
}
