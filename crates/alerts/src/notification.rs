//! A notification: one status change (or a repeat of a lasting level) of one series, for one
//! endpoint, as the outbox keeps it until it is delivered or dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::level::Level;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Stable for the life of the notification: sent as `Idempotency-Key` (HTTP) and kept
    /// across retries and restarts, so a receiver can drop a duplicate.
    pub id: String,
    /// A message sent by `POST …/{id}/test`, marked as such in every format.
    pub test: bool,
    pub check_id: String,
    pub check_name: String,
    pub rule_id: Option<String>,
    pub rule_name: Option<String>,
    /// `owner/name`.
    pub algorithm: String,
    pub version: String,
    /// The metric a threshold check watches; `None` for a deadman check.
    pub metric: Option<String>,
    pub level: Level,
    pub previous_level: Level,
    /// The aggregate that gave the level; `None` when the window had no data (deadman,
    /// `no_data`).
    pub value: Option<f64>,
    /// The rendered message.
    pub message: String,
    /// The check's tags.
    pub tags: BTreeMap<String, String>,
    /// The end of the evaluated window (RFC 3339).
    pub source_time: String,
    /// When the check ran (RFC 3339).
    pub status_time: String,
    /// When the series entered `level` (RFC 3339): Alertmanager's `startsAt`.
    pub since: String,
    /// Stable per check and series: PagerDuty's `dedup_key`, so that `ok` resolves the
    /// incident that a problem level opened.
    pub dedup_key: String,
}

impl Notification {
    /// The labels that identify the series: Alertmanager's labels, PagerDuty's details.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l: BTreeMap<String, String> = self.tags.clone();
        l.insert("alertname".into(), self.check_name.clone());
        l.insert("check_id".into(), self.check_id.clone());
        l.insert("algorithm".into(), self.algorithm.clone());
        l.insert("version".into(), self.version.clone());
        if let Some(m) = &self.metric {
            l.insert("metric".into(), m.clone());
        }
        l
    }
}

/// A stable key for a check's series: a hash, so it is short and reveals nothing.
pub fn dedup_key(check_id: &str, algorithm: &str, version: &str) -> String {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    for part in [check_id, algorithm, version] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(&h.finalize()[..16])
}

/// A value as every message shows it: up to 6 decimals without trailing zeros (`0.75`,
/// `0.712346`, `12`), or `no data` for a window without points.
pub(crate) fn value_text(value: Option<f64>) -> String {
    match value {
        None => "no data".to_string(),
        Some(v) if v.is_finite() && v.abs() >= 1e-4 && v.abs() < 1e15 => {
            let s = format!("{v:.6}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
        Some(v) => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::value_text;

    #[test]
    fn values_read_as_people_write_them() {
        assert_eq!(value_text(Some(0.75)), "0.75");
        assert_eq!(value_text(Some(0.7123456)), "0.712346");
        assert_eq!(value_text(Some(12.0)), "12");
        assert_eq!(value_text(Some(1e-9)), "0.000000001");
        assert_eq!(value_text(None), "no data");
    }
}
