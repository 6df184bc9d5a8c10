//! Evaluating a check: one aggregate per series, its level, and — in one transaction — the
//! series' new state, the status change, and the notifications the rules ask for.
//!
//! **Series.** A threshold check's series are the versions that have data in the window, the
//! versions it has a state for, and the versions that are expected (published with Insights
//! on); a deadman check's, the expected versions and every version the series store has seen.
//! So a version that never reports is caught from the moment it is published, and a series
//! that went silent stays in the check, at its level, until it reports again
//! (influxdb#20282, #23118).
//!
//! **Levels.** A series starts at `ok`. A level above the current one is reported only once it
//! has held for `pending_for`; a level below it is reported at once (hysteresis comes from a
//! threshold's `recovery` value instead, so a recovery is never late).

use std::collections::{BTreeMap, BTreeSet};

use insights_series::{AlgorithmPath, RangeAggregate};
use rusqlite::{OptionalExtension, Transaction, params};

use crate::alerts::{Alerts, Loaded, UNREADABLE_KIND};
use crate::check::{AlgorithmSelector, Check, CheckKind, NoData};
use crate::db::Table;
use crate::endpoint::EndpointKind;
use crate::error::Result;
use crate::level::Level;
use crate::notification::{Notification, dedup_key, value_text};
use crate::rule::Rule;
use crate::template::Vars;
use crate::time_fmt::{rfc3339, to_datetime};

/// Alertmanager resolves an alert whose `endsAt` passed, so a lasting problem is sent to it
/// again at least this often (the sender sets `endsAt` two hours ahead).
const ALERTMANAGER_RESEND_US: i64 = 3600 * 1_000_000;

/// A published version with Insights on: a series every check over its algorithm expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedSeries {
    pub algorithm: AlgorithmPath,
    pub version: String,
    /// When it was published: a deadman check counts its silence from then.
    pub since: time::OffsetDateTime,
}

/// Where the expected series come from (the runtime's catalog).
pub trait Catalog: Send + Sync {
    fn expected(&self) -> Vec<ExpectedSeries>;
}

#[derive(Debug, Clone, PartialEq)]
struct State {
    level: Level,
    since_us: i64,
    value: Option<f64>,
    pending: Option<(Level, i64)>,
}

/// What one evaluation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub series: usize,
    pub changes: usize,
    pub notifications: usize,
    pub suppressed: usize,
}

type Key = (String, String);

fn key_of(a: &AlgorithmPath, version: &str) -> Key {
    (format!("{}/{}", a.owner, a.name), version.to_string())
}

/// One series' outcome of this run: its value (`None`: no data) and the level it gets
/// (`None`: keep the current one).
struct Outcome {
    value: Option<f64>,
    level: Option<Level>,
}

impl Alerts {
    /// Evaluates `check` for the run scheduled at `scheduled_us` (a multiple of `every`,
    /// plus `offset`): the window ends at `scheduled_us - offset`.
    pub(crate) fn evaluate(&self, check: &Check, scheduled_us: i64) -> Result<RunReport> {
        let end_us = scheduled_us - check.offset.as_micros();
        let expected: Vec<ExpectedSeries> = self
            .catalog
            .expected()
            .into_iter()
            .filter(|e| check.algorithm.matches(&e.algorithm))
            .filter(|e| check.versions.is_empty() || check.versions.contains(&e.version))
            .collect();
        let loaded = self.loaded();
        let mut conn = self.db.conn();
        let tx = conn.transaction()?;
        let stored = load_states(&tx, &check.id)?;

        let mut outcomes: BTreeMap<Key, Outcome> = BTreeMap::new();
        let mut algorithms: BTreeSet<(String, String)> = BTreeSet::new();
        match &check.algorithm {
            AlgorithmSelector::One(a) => {
                algorithms.insert((a.owner.clone(), a.name.clone()));
            }
            AlgorithmSelector::All => {
                for e in &expected {
                    algorithms.insert((e.algorithm.owner.clone(), e.algorithm.name.clone()));
                }
                for (a, _) in stored.keys() {
                    if let Some((o, n)) = a.split_once('/') {
                        algorithms.insert((o.to_string(), n.to_string()));
                    }
                }
            }
        }
        match &check.kind {
            CheckKind::Threshold(t) => {
                for (owner, name) in &algorithms {
                    let a = AlgorithmPath::new(owner, name);
                    let values = self
                        .series
                        .aggregate(&RangeAggregate {
                            algorithm: a.clone(),
                            metric: t.metric.clone(),
                            function: t.function,
                            from: to_datetime(end_us - t.window.as_micros()),
                            to: to_datetime(end_us),
                            versions: check.versions.clone(),
                        })
                        .map_err(|e| crate::AlertError::Internal(e.to_string()))?;
                    for v in values {
                        let k = key_of(&a, &v.version);
                        let current = stored.get(&k).map_or(Level::Ok, |s| s.level);
                        outcomes.insert(
                            k,
                            Outcome {
                                value: Some(v.value),
                                level: Some(t.classify(v.value, current)),
                            },
                        );
                    }
                }
                let no_data = match t.no_data {
                    NoData::Keep => None,
                    NoData::Level(l) => Some(l),
                };
                let silent = expected
                    .iter()
                    .map(|e| key_of(&e.algorithm, &e.version))
                    .chain(stored.keys().cloned())
                    .collect::<Vec<_>>();
                for k in silent {
                    outcomes.entry(k).or_insert(Outcome {
                        value: None,
                        level: no_data,
                    });
                }
            }
            CheckKind::Deadman(d) => {
                let mut last_seen: BTreeMap<Key, i64> = BTreeMap::new();
                for e in &expected {
                    last_seen.insert(
                        key_of(&e.algorithm, &e.version),
                        crate::time_fmt::micros(e.since),
                    );
                }
                for (owner, name) in &algorithms {
                    let a = AlgorithmPath::new(owner, name);
                    for vm in self.series.metrics(&a) {
                        if !check.versions.is_empty() && !check.versions.contains(&vm.version) {
                            continue;
                        }
                        if let Some(m) = vm
                            .metrics
                            .iter()
                            .find(|m| m.metric == insights_series::EXECUTIONS)
                        {
                            last_seen.insert(
                                key_of(&a, &vm.version),
                                crate::time_fmt::micros(m.last_seen),
                            );
                        }
                    }
                }
                for k in stored.keys() {
                    last_seen.entry(k.clone()).or_insert(i64::MIN);
                }
                for (k, last) in last_seen {
                    // A series known only from its stored state has no known payload: it
                    // keeps its level (a dead series stays dead).
                    let level = if last == i64::MIN {
                        None
                    } else if end_us.saturating_sub(last) >= d.time_since.as_micros() {
                        Some(d.level)
                    } else {
                        Some(Level::Ok)
                    };
                    outcomes.insert(k, Outcome { value: None, level });
                }
            }
        }

        let mut report = RunReport {
            series: outcomes.len(),
            ..RunReport::default()
        };
        let now_us = self.now_us();
        for ((algorithm, version), outcome) in outcomes {
            let previous = stored.get(&(algorithm.clone(), version.clone())).cloned();
            let mut state = previous.clone().unwrap_or(State {
                level: Level::Ok,
                since_us: end_us,
                value: None,
                pending: None,
            });
            let before = state.level;
            if outcome.value.is_some() {
                state.value = outcome.value;
            }
            if let Some(level) = outcome.level {
                let pending_for = match &check.kind {
                    CheckKind::Threshold(t) => t.pending_for.as_micros(),
                    CheckKind::Deadman(_) => 0,
                };
                if level == state.level {
                    state.pending = None;
                } else if level < state.level || pending_for == 0 {
                    state.level = level;
                    state.since_us = end_us;
                    state.pending = None;
                } else {
                    match state.pending {
                        Some((p, since)) if p == level => {
                            if end_us - since >= pending_for {
                                state.level = level;
                                state.since_us = end_us;
                                state.pending = None;
                            }
                        }
                        _ => state.pending = Some((level, end_us)),
                    }
                }
            }
            let series_tags = series_tags(check, &algorithm, &version);
            let message = |template: &crate::template::Template, rule: Option<&Rule>| {
                render(
                    template, check, &algorithm, &version, &state, before, end_us, rule,
                )
            };
            if state.level != before {
                report.changes += 1;
                tx.execute(
                    "INSERT INTO statuses (check_id, check_name, algorithm, version, level, previous_level, value, message, time_us, source_time_us)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        check.id,
                        check.name,
                        algorithm,
                        version,
                        state.level.as_str(),
                        before.as_str(),
                        state.value,
                        message(&check.message, None),
                        now_us,
                        end_us
                    ],
                )?;
                metrics::counter!("insights_alert_statuses_total", "level" => state.level.as_str())
                    .increment(1);
            }
            for rule in loaded
                .rules
                .iter()
                .filter(|r| r.enabled && r.applies_to(&check.id))
            {
                // A rule to an unreadable endpoint keeps matching: its notifications wait in the
                // outbox, which says why they cannot go, until the endpoint is saved again.
                let (endpoint_id, endpoint_kind, is_alertmanager) =
                    match loaded.endpoints.iter().find(|e| e.id == rule.endpoint) {
                        Some(e) => (
                            e.id.as_str(),
                            e.kind_name(),
                            matches!(e.kind, EndpointKind::Alertmanager { .. }),
                        ),
                        None => match loaded.unreadable(Table::Endpoints, &rule.endpoint) {
                            Some(u) => (
                                u.id.as_str(),
                                UNREADABLE_KIND,
                                u.kind() == Some("alertmanager"),
                            ),
                            None => continue,
                        },
                    };
                let send = if state.level != before {
                    rule.matches_change(before, state.level, &series_tags)
                } else {
                    let every = rule
                        .repeats(state.level, &series_tags)
                        .map(|s| s.as_micros())
                        .or_else(|| {
                            (is_alertmanager && state.level.is_problem())
                                .then_some(ALERTMANAGER_RESEND_US)
                        })
                        .map(|e| {
                            if is_alertmanager {
                                e.min(ALERTMANAGER_RESEND_US)
                            } else {
                                e
                            }
                        });
                    match every {
                        Some(every) => {
                            let last: Option<i64> = tx
                                .query_row(
                                    "SELECT last_us FROM rule_sent WHERE rule_id = ?1 AND check_id = ?2 AND algorithm = ?3 AND version = ?4",
                                    params![rule.id, check.id, algorithm, version],
                                    |r| r.get(0),
                                )
                                .optional()?;
                            last.is_some_and(|l| end_us - l >= every)
                        }
                        None => false,
                    }
                };
                if !send {
                    continue;
                }
                let text = match &rule.message {
                    Some(t) => message(t, Some(rule)),
                    None => message(&check.message, Some(rule)),
                };
                let n = Notification {
                    id: uuid::Uuid::new_v4().to_string(),
                    test: false,
                    check_id: check.id.clone(),
                    check_name: check.name.clone(),
                    rule_id: Some(rule.id.clone()),
                    rule_name: Some(rule.name.clone()),
                    algorithm: algorithm.clone(),
                    version: version.clone(),
                    metric: match &check.kind {
                        CheckKind::Threshold(t) => Some(t.metric.clone()),
                        CheckKind::Deadman(_) => None,
                    },
                    level: state.level,
                    previous_level: before,
                    value: state.value,
                    message: text,
                    tags: check.tags.clone(),
                    source_time: rfc3339(end_us),
                    status_time: rfc3339(now_us),
                    since: rfc3339(state.since_us),
                    dedup_key: dedup_key(&check.id, &algorithm, &version),
                };
                let suppressed = match rule.limit {
                    Some(limit) => {
                        let sent: i64 = tx.query_row(
                            "SELECT count(*) FROM notifications WHERE rule_id = ?1 AND state != 'suppressed' AND created_us > ?2",
                            params![rule.id, now_us - limit.every.as_micros()],
                            |r| r.get(0),
                        )?;
                        sent >= i64::from(limit.count)
                    }
                    None => false,
                };
                crate::outbox::enqueue(
                    &tx,
                    &n,
                    (endpoint_id, endpoint_kind),
                    now_us,
                    suppressed,
                    self.cfg.max_pending,
                )?;
                tx.execute(
                    "INSERT INTO rule_sent (rule_id, check_id, algorithm, version, last_us) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (rule_id, check_id, algorithm, version) DO UPDATE SET last_us = ?5",
                    params![rule.id, check.id, algorithm, version, end_us],
                )?;
                if suppressed {
                    report.suppressed += 1;
                } else {
                    report.notifications += 1;
                }
            }
            tx.execute(
                "INSERT INTO series_state (check_id, algorithm, version, level, since_us, value, pending_level, pending_since_us, last_run_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (check_id, algorithm, version) DO UPDATE SET
                   level = ?4, since_us = ?5, value = ?6, pending_level = ?7, pending_since_us = ?8, last_run_us = ?9",
                params![
                    check.id,
                    algorithm,
                    version,
                    state.level.as_str(),
                    state.since_us,
                    state.value,
                    state.pending.map(|p| p.0.as_str()),
                    state.pending.map(|p| p.1),
                    end_us
                ],
            )?;
        }
        tx.commit()?;
        metrics::counter!("insights_alert_checks_evaluated_total", "kind" => check.kind_name())
            .increment(1);
        if report.notifications > 0 {
            self.wake_outbox.notify_one();
        }
        Ok(report)
    }
}

fn load_states(tx: &Transaction<'_>, check: &str) -> Result<BTreeMap<Key, State>> {
    let mut st = tx.prepare(
        "SELECT algorithm, version, level, since_us, value, pending_level, pending_since_us FROM series_state WHERE check_id = ?1",
    )?;
    let rows = st.query_map([check], |r| {
        Ok((
            (r.get::<_, String>(0)?, r.get::<_, String>(1)?),
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, Option<f64>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, Option<i64>>(6)?,
        ))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (k, level, since_us, value, pl, ps) = row?;
        out.insert(
            k,
            State {
                level: level.parse().unwrap_or(Level::Ok),
                since_us,
                value,
                pending: pl.and_then(|l| l.parse().ok()).zip(ps),
            },
        );
    }
    Ok(out)
}

/// The labels a rule's tag rules see: the check's tags and the series' own.
fn series_tags(check: &Check, algorithm: &str, version: &str) -> BTreeMap<String, String> {
    let mut t = check.tags.clone();
    t.insert("algorithm".into(), algorithm.to_string());
    t.insert("version".into(), version.to_string());
    t.insert("check".into(), check.name.clone());
    t
}

#[allow(clippy::too_many_arguments)]
fn render(
    template: &crate::template::Template,
    check: &Check,
    algorithm: &str,
    version: &str,
    state: &State,
    previous: Level,
    end_us: i64,
    rule: Option<&Rule>,
) -> String {
    let mut vars = Vars {
        values: BTreeMap::new(),
        tags: &check.tags,
    };
    let v = &mut vars.values;
    v.insert("check", check.name.clone());
    v.insert("level", state.level.as_str().to_string());
    v.insert("previous_level", previous.as_str().to_string());
    v.insert("value", value_text(state.value));
    v.insert("algorithm", algorithm.to_string());
    v.insert("version", version.to_string());
    v.insert("time", rfc3339(end_us));
    v.insert("since", rfc3339(state.since_us));
    if let Some(r) = rule {
        v.insert("rule", r.name.clone());
    }
    match &check.kind {
        CheckKind::Threshold(t) => {
            v.insert("metric", t.metric.clone());
            v.insert("fn", t.function.as_str().to_string());
            v.insert("window", t.window.to_string());
        }
        CheckKind::Deadman(d) => {
            v.insert("window", d.time_since.to_string());
        }
    }
    template.render(&vars)
}

impl Loaded {
    pub(crate) fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.id == id)
    }
}
