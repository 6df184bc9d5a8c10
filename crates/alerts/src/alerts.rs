//! [`Alerts`]: the handle the server holds. It keeps checks, endpoints and rules in memory
//! (written through to the database), runs the scheduler and the outbox, and answers the
//! admin API's reads.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use insights_series::{Clock, SeriesStore};
use insights_store::SecretBox;
use rusqlite::params;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::check::{Check, CheckKind};
use crate::db::{Db, Table};
use crate::endpoint::Endpoint;
use crate::engine::{Catalog, RunReport};
use crate::error::{AlertError, FieldError, Result};
use crate::level::Level;
use crate::notify::Sender;
use crate::rule::Rule;
use crate::time_fmt::{micros, rfc3339, to_datetime};

/// Bounds and windows of the alerting service.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// How long a notification is retried before it is dropped and counted.
    pub delivery_window: Duration,
    /// Notifications waiting at most; past it a new one is dropped (`outbox_full`).
    pub max_pending: usize,
    /// Finished notifications and status changes kept for the history, each.
    pub max_history: usize,
    pub max_checks: usize,
    pub max_endpoints: usize,
    pub max_rules: usize,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            delivery_window: Duration::from_secs(3600),
            max_pending: 10_000,
            max_history: 100_000,
            max_checks: 10_000,
            max_endpoints: 1_000,
            max_rules: 10_000,
        }
    }
}

/// What is configured, as one snapshot: an evaluation sees one consistent set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Loaded {
    pub(crate) checks: Vec<Check>,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) rules: Vec<Rule>,
    /// Stored documents this server could not read back; the rest runs without them.
    pub(crate) unreadable: Vec<Unreadable>,
}

/// The endpoint kind notifications to an unreadable endpoint are logged and counted under.
pub(crate) const UNREADABLE_KIND: &str = "unreadable";

/// A stored check, endpoint or rule that could not be read back when alerting started: an
/// endpoint whose secrets were sealed with another `secret.key` (a data directory restored
/// without it), a document a newer version wrote or a damaged row. It stays in the database
/// as it is, is listed with the reason beside the readable ones (`unreadable`), counted in
/// `insights_alerts_unreadable_documents`, and is mended by saving it again (`PUT` with its
/// id, secrets included) or removed (`DELETE`). A rule to an unreadable endpoint keeps
/// matching, and its notifications fail in the log with the reason: nothing goes unseen.
/// One bad document used to stop the whole server from starting.
#[derive(Debug, Clone)]
pub(crate) struct Unreadable {
    pub(crate) table: Table,
    pub(crate) id: String,
    /// The stored document, if it is JSON (its secrets are sealed; none is shown).
    doc: Option<Value>,
    pub(crate) error: String,
}

impl Unreadable {
    fn field(&self, key: &str) -> Option<&str> {
        self.doc.as_ref()?.get(key)?.as_str()
    }

    /// When it was first made, kept when it is saved again.
    fn created_at(&self) -> String {
        self.field("created_at").unwrap_or_default().to_string()
    }

    /// The endpoint's kind as it was stored (`slack`, `alertmanager`, …).
    pub(crate) fn kind(&self) -> Option<&str> {
        self.field("kind")
    }

    fn view(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.field("name"),
            "kind": self.field("kind"),
            "error": self.error,
            "fix": "save it again with PUT on its id (an endpoint with its secrets), or DELETE it",
        })
    }
}

impl Loaded {
    pub(crate) fn unreadable(&self, table: Table, id: &str) -> Option<&Unreadable> {
        self.unreadable
            .iter()
            .find(|u| u.table == table && u.id == id)
    }

    fn unreadable_views(&self, table: Table) -> Vec<Value> {
        self.unreadable
            .iter()
            .filter(|u| u.table == table)
            .map(Unreadable::view)
            .collect()
    }

    /// Why `id` of `table` cannot be used: not stored, or stored and unreadable.
    fn missing(&self, table: Table, id: &str, what: &str) -> AlertError {
        match self.unreadable(table, id) {
            Some(u) => AlertError::Conflict(format!(
                "{what} {id} is stored but cannot be read ({}); save it again with PUT on its id, or DELETE it",
                u.error
            )),
            None => AlertError::NotFound(format!("{what} {id}")),
        }
    }

    /// When `id` of `table`, about to be saved again, was first made: the readable one's
    /// `existing` time, or the unreadable one's; not found if neither is stored.
    fn created_at(
        &self,
        table: Table,
        id: &str,
        existing: Option<&String>,
        what: &str,
    ) -> Result<String> {
        match (existing, self.unreadable(table, id)) {
            (Some(at), _) => Ok(at.clone()),
            (None, Some(unreadable)) => Ok(unreadable.created_at()),
            (None, None) => Err(AlertError::NotFound(format!("{what} {id}"))),
        }
    }

    /// It was saved again or deleted.
    fn mended(&mut self, table: Table, id: &str) {
        self.unreadable
            .retain(|u| !(u.table == table && u.id == id));
        self.count_unreadable();
    }

    fn count_unreadable(&self) {
        metrics::gauge!("insights_alerts_unreadable_documents").set(self.unreadable.len() as f64);
    }
}

pub struct Alerts {
    pub(crate) db: Db,
    pub(crate) series: Arc<SeriesStore>,
    pub(crate) catalog: Arc<dyn Catalog>,
    secrets: Arc<SecretBox>,
    clock: Clock,
    pub(crate) cfg: AlertsConfig,
    loaded: RwLock<Arc<Loaded>>,
    wake_scheduler: tokio::sync::Notify,
    pub(crate) wake_outbox: tokio::sync::Notify,
    pub(crate) sender: Sender,
}

/// The running scheduler and outbox; [`AlertsTasks::stop`] ends both.
pub struct AlertsTasks {
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl AlertsTasks {
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Filters of `GET /v1/admin/statuses`.
#[derive(Debug, Default, Clone)]
pub struct StatusFilter {
    pub check: Option<String>,
    /// `owner/name`.
    pub algorithm: Option<String>,
    pub version: Option<String>,
    pub level: Option<Level>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub limit: usize,
}

/// Filters of `GET /v1/admin/notifications`.
#[derive(Debug, Default, Clone)]
pub struct NotificationFilter {
    pub rule: Option<String>,
    pub endpoint: Option<String>,
    pub check: Option<String>,
    /// The level changed to.
    pub level: Option<Level>,
    /// `waiting`, `retrying`, `sent`, `dropped` or `suppressed`.
    pub state: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub limit: usize,
}

impl Alerts {
    /// Opens `<data_dir>/alerts.sqlite` and loads what it holds; schedules resume from it
    /// with nothing to re-save (influxdb#25040).
    pub fn open(
        data_dir: &Path,
        cfg: AlertsConfig,
        series: Arc<SeriesStore>,
        catalog: Arc<dyn Catalog>,
        secrets: Arc<SecretBox>,
        clock: Clock,
    ) -> Result<Arc<Alerts>> {
        let db = Db::open(data_dir)?;
        let mut loaded = Loaded::default();
        for table in [Table::Checks, Table::Endpoints, Table::Rules] {
            for (id, doc) in db.documents(table)? {
                let unread = match doc {
                    Err(error) => Some((error, None)),
                    Ok(doc) => {
                        let read = match table {
                            Table::Checks => stored_check(&doc).map(|c| loaded.checks.push(c)),
                            Table::Endpoints => Endpoint::from_stored(&doc, &secrets)
                                .map(|e| loaded.endpoints.push(e)),
                            Table::Rules => stored_rule(&doc).map(|r| loaded.rules.push(r)),
                        };
                        read.err().map(|e| (e.to_string(), Some(doc)))
                    }
                };
                if let Some((error, doc)) = unread {
                    tracing::warn!(
                        table = table.name(),
                        id = %id,
                        error = %error,
                        "a stored alerting document cannot be read; alerting runs without it until it is saved again or deleted"
                    );
                    loaded.unreadable.push(Unreadable {
                        table,
                        id,
                        doc,
                        error,
                    });
                }
            }
        }
        loaded.count_unreadable();
        Ok(Arc::new(Alerts {
            db,
            series,
            catalog,
            secrets,
            clock,
            cfg,
            loaded: RwLock::new(Arc::new(loaded)),
            wake_scheduler: tokio::sync::Notify::new(),
            wake_outbox: tokio::sync::Notify::new(),
            sender: Sender::new(),
        }))
    }

    pub(crate) fn now_us(&self) -> i64 {
        micros(self.clock.now())
    }

    pub(crate) fn loaded(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn change(&self, f: impl FnOnce(&mut Loaded)) {
        let mut guard = self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Loaded::clone(&guard);
        f(&mut next);
        *guard = Arc::new(next);
        drop(guard);
        self.wake_scheduler.notify_one();
    }

    /// Starts the scheduler and the outbox on the current tokio runtime.
    pub fn start(self: &Arc<Self>) -> AlertsTasks {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let scheduler = tokio::spawn(self.clone().run_scheduler(rx.clone()));
        let outbox = tokio::spawn(self.clone().run_outbox(rx));
        AlertsTasks {
            shutdown: tx,
            tasks: vec![scheduler, outbox],
        }
    }

    /// Runs every enabled check at its times. A run that comes later than its time (a busy
    /// machine, a restart) evaluates the window it was scheduled for; runs missed while the
    /// process was down are not replayed (the stored states make the next run compare against
    /// the last known level, so no change is lost, only its time is later).
    async fn run_scheduler(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut next: HashMap<String, i64> = HashMap::new();
        loop {
            let now = self.now_us();
            let loaded = self.loaded();
            next.retain(|id, _| loaded.check(id).is_some_and(|c| c.enabled));
            let mut earliest = i64::MAX;
            let mut due = Vec::new();
            for c in loaded.checks.iter().filter(|c| c.enabled) {
                let at = *next.entry(c.id.clone()).or_insert_with(|| next_run(c, now));
                if at <= now {
                    due.push((c.clone(), at));
                } else {
                    earliest = earliest.min(at);
                }
            }
            for (c, at) in due {
                let this = self.clone();
                let check = c.clone();
                let started = std::time::Instant::now();
                let result = tokio::task::spawn_blocking(move || this.evaluate(&check, at)).await;
                let lag = (self.now_us() - at) as f64 / 1e6;
                metrics::histogram!("insights_alert_evaluation_lag_seconds").record(lag);
                metrics::histogram!("insights_alert_evaluation_seconds")
                    .record(started.elapsed().as_secs_f64());
                match result {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        metrics::counter!("insights_alert_evaluation_errors_total").increment(1);
                        tracing::error!(check = %crate::error::shown(&c.name), error = %e, "a check could not be evaluated; it runs again at its next time");
                    }
                    Err(e) => tracing::error!(error = %e, "a check's evaluation panicked"),
                }
                let after = self.now_us().max(at);
                let n = next_run(&c, after);
                let skipped = (n - at) / c.every.as_micros() - 1;
                if skipped > 0 {
                    metrics::counter!("insights_alert_runs_skipped_total")
                        .increment(skipped as u64);
                }
                next.insert(c.id.clone(), n);
                earliest = earliest.min(n);
            }
            let wait = if earliest == i64::MAX {
                Duration::from_secs(3600)
            } else {
                Duration::from_micros((earliest - self.now_us()).max(0) as u64)
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake_scheduler.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Evaluates one check as its run at `scheduled` would (tests and the `run` button).
    pub fn evaluate_at(&self, check_id: &str, scheduled: OffsetDateTime) -> Result<RunReport> {
        let loaded = self.loaded();
        let check = loaded
            .check(check_id)
            .ok_or_else(|| loaded.missing(Table::Checks, check_id, "check"))?;
        self.evaluate(check, micros(scheduled))
    }

    // --- checks -------------------------------------------------------------------------

    pub fn checks(&self) -> Result<Value> {
        let loaded = self.loaded();
        let mut out = Vec::new();
        for c in &loaded.checks {
            let mut d = c.document();
            d["series"] = self.series_states(&c.id)?;
            out.push(d);
        }
        Ok(json!({ "checks": out, "unreadable": loaded.unreadable_views(Table::Checks) }))
    }

    pub fn check(&self, id: &str) -> Result<Value> {
        let loaded = self.loaded();
        let c = loaded
            .check(id)
            .ok_or_else(|| loaded.missing(Table::Checks, id, "check"))?;
        let mut d = c.document();
        d["series"] = self.series_states(id)?;
        Ok(d)
    }

    fn series_states(&self, id: &str) -> Result<Value> {
        let conn = self.db.conn();
        let mut st = conn.prepare(
            "SELECT algorithm, version, level, since_us, value, pending_level, last_run_us FROM series_state WHERE check_id = ?1 ORDER BY algorithm, version",
        )?;
        let rows = st.query_map([id], |r| {
            Ok(json!({
                "algorithm": r.get::<_, String>(0)?,
                "version": r.get::<_, String>(1)?,
                "level": r.get::<_, String>(2)?,
                "since": rfc3339(r.get(3)?),
                "value": r.get::<_, Option<f64>>(4)?,
                "pending_level": r.get::<_, Option<String>>(5)?,
                "evaluated_window_end": rfc3339(r.get(6)?),
            }))
        })?;
        Ok(Value::Array(rows.collect::<rusqlite::Result<Vec<_>>>()?))
    }

    pub fn create_check(&self, body: &Value) -> Result<Value> {
        if self.loaded().checks.len() >= self.cfg.max_checks {
            return Err(AlertError::Conflict(format!(
                "there are {} checks already, the most this server keeps; delete one first",
                self.cfg.max_checks
            )));
        }
        let now = rfc3339(self.now_us());
        let c = Check::from_document(body, new_id(), now.clone(), now)?;
        let doc = c.document();
        self.db.put(Table::Checks, &c.id, &doc)?;
        self.change(|l| l.checks.push(c));
        Ok(doc)
    }

    /// Saves check `id` again; an unreadable one is replaced by it.
    pub fn update_check(&self, id: &str, body: &Value) -> Result<Value> {
        let loaded = self.loaded();
        let old = loaded.check(id).map(|c| &c.created_at);
        let created_at = loaded.created_at(Table::Checks, id, old, "check")?;
        let c = Check::from_document(body, id.to_string(), created_at, rfc3339(self.now_us()))?;
        let doc = c.document();
        self.db.put(Table::Checks, id, &doc)?;
        self.change(|l| {
            match l.checks.iter_mut().find(|x| x.id == id) {
                Some(slot) => *slot = c,
                None => l.checks.push(c),
            }
            l.mended(Table::Checks, id);
        });
        Ok(doc)
    }

    pub fn delete_check(&self, id: &str) -> Result<()> {
        if !self.db.delete(Table::Checks, id)? {
            return Err(AlertError::NotFound(format!("check {id}")));
        }
        self.change(|l| {
            l.checks.retain(|c| c.id != id);
            l.mended(Table::Checks, id);
        });
        Ok(())
    }

    /// The level each of the last `runs` windows would get, per series, for a check as it
    /// would be saved (the form's live preview). Pending and no-data handling are left out:
    /// the preview shows the values and the thresholds' verdict on each.
    pub fn preview_check(&self, body: &Value, runs: usize) -> Result<Value> {
        let now = self.now_us();
        let c = Check::from_document(body, "preview".into(), String::new(), String::new())?;
        let CheckKind::Threshold(t) = &c.kind else {
            return Err(AlertError::invalid(
                "kind",
                "a preview shows a threshold check's windows; a deadman check has none",
            ));
        };
        let every = c.every.as_micros();
        let last = next_run(&c, now) - every;
        let mut series: std::collections::BTreeMap<(String, String), Vec<Value>> =
            Default::default();
        let algorithms: Vec<insights_series::AlgorithmPath> = match &c.algorithm {
            crate::check::AlgorithmSelector::One(a) => vec![a.clone()],
            crate::check::AlgorithmSelector::All => {
                let mut v: Vec<_> = self
                    .catalog
                    .expected()
                    .into_iter()
                    .map(|e| e.algorithm)
                    .collect();
                v.sort_by(|a, b| (&a.owner, &a.name).cmp(&(&b.owner, &b.name)));
                v.dedup();
                v
            }
        };
        let runs = runs.clamp(1, 200);
        for i in (0..runs as i64).rev() {
            let end = last - i * every - c.offset.as_micros();
            for a in &algorithms {
                let values = self
                    .series
                    .aggregate(&insights_series::RangeAggregate {
                        algorithm: a.clone(),
                        metric: t.metric.clone(),
                        function: t.function,
                        from: to_datetime(end - t.window.as_micros()),
                        to: to_datetime(end),
                        versions: c.versions.clone(),
                    })
                    .map_err(|e| AlertError::Internal(e.to_string()))?;
                for v in values {
                    let points = series
                        .entry((format!("{}/{}", a.owner, a.name), v.version.clone()))
                        .or_default();
                    let current = points
                        .last()
                        .and_then(|p| p["level"].as_str())
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(Level::Ok);
                    points.push(json!({
                        "window_end": rfc3339(end),
                        "value": v.value,
                        "count": v.count,
                        "level": t.classify(v.value, current),
                    }));
                }
            }
        }
        Ok(json!({
            "every": c.every,
            "window": t.window,
            "series": series.into_iter().map(|((a, v), points)| json!({"algorithm": a, "version": v, "windows": points})).collect::<Vec<_>>(),
        }))
    }

    // --- endpoints ----------------------------------------------------------------------

    pub fn endpoints(&self) -> Value {
        let loaded = self.loaded();
        json!({
            "endpoints": loaded.endpoints.iter().map(Endpoint::view).collect::<Vec<_>>(),
            "unreadable": loaded.unreadable_views(Table::Endpoints),
        })
    }

    pub fn endpoint(&self, id: &str) -> Result<Value> {
        let loaded = self.loaded();
        loaded
            .endpoints
            .iter()
            .find(|e| e.id == id)
            .map(Endpoint::view)
            .ok_or_else(|| loaded.missing(Table::Endpoints, id, "notification endpoint"))
    }

    pub fn create_endpoint(&self, body: &Value) -> Result<Value> {
        if self.loaded().endpoints.len() >= self.cfg.max_endpoints {
            return Err(AlertError::Conflict(format!(
                "there are {} notification endpoints already, the most this server keeps",
                self.cfg.max_endpoints
            )));
        }
        let now = rfc3339(self.now_us());
        let e = Endpoint::from_document(body, None, new_id(), now.clone(), now)?;
        self.db
            .put(Table::Endpoints, &e.id, &e.stored(&self.secrets))?;
        let view = e.view();
        self.change(|l| l.endpoints.push(e));
        Ok(view)
    }

    /// Saves endpoint `id` again, keeping the secrets the body leaves out; an unreadable one
    /// is replaced by it, and then the body must carry its secrets (the stored ones cannot
    /// be opened).
    pub fn update_endpoint(&self, id: &str, body: &Value) -> Result<Value> {
        let loaded = self.loaded();
        let old = loaded.endpoints.iter().find(|e| e.id == id);
        let created_at = loaded.created_at(
            Table::Endpoints,
            id,
            old.map(|e| &e.created_at),
            "notification endpoint",
        )?;
        let e = Endpoint::from_document(
            body,
            old,
            id.to_string(),
            created_at,
            rfc3339(self.now_us()),
        )?;
        self.db
            .put(Table::Endpoints, id, &e.stored(&self.secrets))?;
        let view = e.view();
        self.change(|l| {
            match l.endpoints.iter_mut().find(|x| x.id == id) {
                Some(slot) => *slot = e,
                None => l.endpoints.push(e),
            }
            l.mended(Table::Endpoints, id);
        });
        Ok(view)
    }

    pub fn delete_endpoint(&self, id: &str) -> Result<()> {
        let loaded = self.loaded();
        let users: Vec<&str> = loaded
            .rules
            .iter()
            .filter(|r| r.endpoint == id)
            .map(|r| r.name.as_str())
            .collect();
        if !users.is_empty() {
            return Err(AlertError::Conflict(format!(
                "the endpoint is used by the rules {}; delete them or point them elsewhere first",
                users.join(", ")
            )));
        }
        if !self.db.delete(Table::Endpoints, id)? {
            return Err(AlertError::NotFound(format!("notification endpoint {id}")));
        }
        self.change(|l| {
            l.endpoints.retain(|e| e.id != id);
            l.mended(Table::Endpoints, id);
        });
        Ok(())
    }

    /// Sends a clearly marked test message to the endpoint now (not through the outbox: the
    /// administrator waits for the verdict) and answers it in words.
    pub async fn test_endpoint(&self, id: &str) -> Result<Value> {
        let loaded = self.loaded();
        let e = loaded
            .endpoints
            .iter()
            .find(|e| e.id == id)
            .cloned()
            .ok_or_else(|| loaded.missing(Table::Endpoints, id, "notification endpoint"))?;
        let n = crate::notify::test_notification(&e, self.clock.now());
        let result = self.sender.send(&e, &n).await;
        Ok(json!({
            "accepted": result.is_ok(),
            "verdict": crate::notify::Sent::verdict(&result),
        }))
    }

    // --- rules --------------------------------------------------------------------------

    /// Every rule, each with how many notifications its `limit` suppressed.
    pub fn rules(&self) -> Result<Value> {
        let suppressed: HashMap<String, i64> = {
            let conn = self.db.conn();
            let mut st = conn.prepare(
                "SELECT rule_id, count(*) FROM notifications WHERE state = 'suppressed' AND rule_id IS NOT NULL GROUP BY rule_id",
            )?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?
        };
        let rules: Vec<Value> = self
            .loaded()
            .rules
            .iter()
            .map(|r| {
                let mut d = r.document();
                d["suppressed"] = json!(suppressed.get(&r.id).copied().unwrap_or(0));
                d
            })
            .collect();
        Ok(json!({ "rules": rules, "unreadable": self.loaded().unreadable_views(Table::Rules) }))
    }

    pub fn rule(&self, id: &str) -> Result<Value> {
        let loaded = self.loaded();
        let r = loaded
            .rules
            .iter()
            .find(|r| r.id == id)
            .ok_or_else(|| loaded.missing(Table::Rules, id, "notification rule"))?;
        let mut d = r.document();
        d["suppressed"] = json!(self.count_notifications(id, "suppressed")?);
        Ok(d)
    }

    fn count_notifications(&self, rule: &str, state: &str) -> Result<i64> {
        Ok(self.db.conn().query_row(
            "SELECT count(*) FROM notifications WHERE rule_id = ?1 AND state = ?2",
            params![rule, state],
            |r| r.get(0),
        )?)
    }

    fn validate_references(&self, r: &Rule) -> Result<()> {
        let loaded = self.loaded();
        let mut errors = Vec::new();
        // An unreadable endpoint is still stored: a rule may name it while it is mended.
        if !loaded.endpoints.iter().any(|e| e.id == r.endpoint)
            && loaded.unreadable(Table::Endpoints, &r.endpoint).is_none()
        {
            errors.push(FieldError::new(
                "endpoint",
                "names no notification endpoint; create one first (POST /v1/admin/notification-endpoints)",
            ));
        }
        for (i, c) in r.checks.iter().flatten().enumerate() {
            if loaded.check(c).is_none() && loaded.unreadable(Table::Checks, c).is_none() {
                errors.push(FieldError::new(format!("checks[{i}]"), "names no check"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(AlertError::Invalid(errors))
        }
    }

    pub fn create_rule(&self, body: &Value) -> Result<Value> {
        if self.loaded().rules.len() >= self.cfg.max_rules {
            return Err(AlertError::Conflict(format!(
                "there are {} notification rules already, the most this server keeps",
                self.cfg.max_rules
            )));
        }
        let now = rfc3339(self.now_us());
        let r = Rule::from_document(body, new_id(), now.clone(), now)?;
        self.validate_references(&r)?;
        let doc = r.document();
        self.db.put(Table::Rules, &r.id, &doc)?;
        self.change(|l| l.rules.push(r));
        Ok(doc)
    }

    /// Saves rule `id` again; an unreadable one is replaced by it.
    pub fn update_rule(&self, id: &str, body: &Value) -> Result<Value> {
        let loaded = self.loaded();
        let old = loaded.rules.iter().find(|r| r.id == id);
        let created_at = loaded.created_at(
            Table::Rules,
            id,
            old.map(|r| &r.created_at),
            "notification rule",
        )?;
        let r = Rule::from_document(body, id.to_string(), created_at, rfc3339(self.now_us()))?;
        self.validate_references(&r)?;
        let doc = r.document();
        self.db.put(Table::Rules, id, &doc)?;
        self.change(|l| {
            match l.rules.iter_mut().find(|x| x.id == id) {
                Some(slot) => *slot = r,
                None => l.rules.push(r),
            }
            l.mended(Table::Rules, id);
        });
        Ok(doc)
    }

    pub fn delete_rule(&self, id: &str) -> Result<()> {
        if !self.db.delete(Table::Rules, id)? {
            return Err(AlertError::NotFound(format!("notification rule {id}")));
        }
        self.change(|l| {
            l.rules.retain(|r| r.id != id);
            l.mended(Table::Rules, id);
        });
        Ok(())
    }

    // --- history ------------------------------------------------------------------------

    pub fn statuses(&self, f: &StatusFilter) -> Result<Value> {
        let conn = self.db.conn();
        let mut st = conn.prepare(
            "SELECT check_id, check_name, algorithm, version, level, previous_level, value, message, time_us, source_time_us
             FROM statuses
             WHERE (?1 IS NULL OR check_id = ?1) AND (?2 IS NULL OR level = ?2)
               AND (?3 IS NULL OR time_us >= ?3) AND (?4 IS NULL OR time_us < ?4)
               AND (?6 IS NULL OR algorithm = ?6) AND (?7 IS NULL OR version = ?7)
             ORDER BY seq DESC LIMIT ?5",
        )?;
        let rows = st.query_map(
            params![
                f.check,
                f.level.map(Level::as_str),
                f.from.map(micros),
                f.to.map(micros),
                f.limit.clamp(1, 1000) as i64,
                f.algorithm,
                f.version
            ],
            |r| {
                Ok(json!({
                    "check_id": r.get::<_, String>(0)?,
                    "check": r.get::<_, String>(1)?,
                    "algorithm": r.get::<_, String>(2)?,
                    "version": r.get::<_, String>(3)?,
                    "level": r.get::<_, String>(4)?,
                    "previous_level": r.get::<_, String>(5)?,
                    "value": r.get::<_, Option<f64>>(6)?,
                    "message": r.get::<_, String>(7)?,
                    "time": rfc3339(r.get(8)?),
                    "window_end": rfc3339(r.get(9)?),
                }))
            },
        )?;
        Ok(json!({ "statuses": rows.collect::<rusqlite::Result<Vec<_>>>()? }))
    }

    pub fn notifications(&self, f: &NotificationFilter) -> Result<Value> {
        let conn = self.db.conn();
        let mut st = conn.prepare(
            "SELECT id, rule_id, endpoint_id, endpoint_kind, doc, state, attempts, last_error, created_us, done_us, next_attempt_us
             FROM notifications
             WHERE (?1 IS NULL OR rule_id = ?1) AND (?2 IS NULL OR endpoint_id = ?2)
               AND (?3 IS NULL OR check_id = ?3) AND (?4 IS NULL OR created_us >= ?4)
               AND (?6 IS NULL OR json_extract(doc, '$.level') = ?6)
               AND (?7 IS NULL OR (CASE WHEN state = 'pending' THEN (CASE WHEN attempts = 0 THEN 'waiting' ELSE 'retrying' END) ELSE state END) = ?7)
             ORDER BY seq DESC LIMIT ?5",
        )?;
        let rows = st.query_map(
            params![
                f.rule,
                f.endpoint,
                f.check,
                f.from.map(micros),
                f.limit.clamp(1, 1000) as i64,
                f.level.map(Level::as_str),
                f.state
            ],
            |r| {
                let doc: String = r.get(4)?;
                let n: Value = serde_json::from_str(&doc).unwrap_or(Value::Null);
                let state: String = r.get(5)?;
                let shown = match state.as_str() {
                    "pending" => "retrying",
                    other => other,
                };
                let attempts: i64 = r.get(6)?;
                let shown = if shown == "retrying" && attempts == 0 {
                    "waiting"
                } else {
                    shown
                };
                Ok(json!({
                    "id": r.get::<_, String>(0)?,
                    "rule_id": r.get::<_, Option<String>>(1)?,
                    "endpoint_id": r.get::<_, String>(2)?,
                    "endpoint_kind": r.get::<_, String>(3)?,
                    "check_id": n["check_id"],
                    "check": n["check_name"],
                    "algorithm": n["algorithm"],
                    "version": n["version"],
                    "previous_level": n["previous_level"],
                    "level": n["level"],
                    "message": n["message"],
                    "state": shown,
                    "attempts": attempts,
                    "last_error": r.get::<_, Option<String>>(7)?,
                    "created": rfc3339(r.get(8)?),
                    "done": r.get::<_, Option<i64>>(9)?.map(rfc3339),
                    "next_attempt": (shown == "retrying").then(|| r.get::<_, i64>(10).map(rfc3339)).transpose()?,
                }))
            },
        )?;
        Ok(json!({ "notifications": rows.collect::<rusqlite::Result<Vec<_>>>()? }))
    }
}

/// The first run of `check` after `after_us`: a multiple of `every` plus `offset`.
pub(crate) fn next_run(check: &Check, after_us: i64) -> i64 {
    let every = check.every.as_micros();
    let offset = check.offset.as_micros();
    ((after_us - offset).div_euclid(every) + 1) * every + offset
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn stored_check(doc: &Value) -> Result<Check> {
    let s = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
    Check::from_document(doc, s("id"), s("created_at"), s("updated_at"))
        .map_err(|e| AlertError::Internal(format!("a stored check no longer validates: {e}")))
}

fn stored_rule(doc: &Value) -> Result<Rule> {
    let s = |k: &str| doc[k].as_str().unwrap_or_default().to_string();
    Rule::from_document(doc, s("id"), s("created_at"), s("updated_at"))
        .map_err(|e| AlertError::Internal(format!("a stored rule no longer validates: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_multiples_of_every_plus_offset() {
        let c = Check::from_document(
            &json!({"name": "x", "kind": "deadman", "query": {"algorithm": "*"}, "every": "1m", "offset": "10s", "time_since": "5m"}),
            "c".into(),
            String::new(),
            String::new(),
        )
        .unwrap();
        let m = 60_000_000;
        let s = 1_000_000;
        assert_eq!(next_run(&c, 0), 10 * s);
        assert_eq!(next_run(&c, 10 * s), m + 10 * s);
        assert_eq!(next_run(&c, m + 9 * s), m + 10 * s);
    }
}
