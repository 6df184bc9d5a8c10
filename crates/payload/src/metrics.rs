//! The inference metrics of one execution, and the limits Algorithmia documented for them.

use std::fmt;

use serde_json::Number;

use crate::keys;

/// At most this many reported metrics per execution (operational keys not counted).
pub const MAX_METRICS: usize = 25;
/// At most this many bytes of metric keys plus values (values counted as their JSON text).
pub const MAX_METRICS_BYTES: usize = 25_000;

/// Names an algorithm may not report: the operational keys of the payload, `timestamp`
/// (reserved by Algorithmia's documentation), and the opt-in `status` / `error_type` keys.
pub const RESERVED_NAMES: [&str; 10] = [
    keys::ALGORITHM_NAME,
    keys::ALGORITHM_OWNER,
    keys::ALGORITHM_VERSION,
    keys::SESSION_ID,
    keys::REQUEST_ID,
    keys::DURATION_MILLISECONDS,
    keys::TIME,
    "timestamp",
    keys::STATUS,
    keys::ERROR_TYPE,
];

/// Reported names may not start with this: the series Insights derives from the payloads
/// (`insights.executions`, `insights.failures`) live under it, so they can never collide with
/// a metric an algorithm reports.
pub const RESERVED_PREFIX: &str = "insights.";

/// A metric value: always a JSON number. Integers stay integers (`1`), floats stay floats
/// (`0.2`), exactly as the algorithm reported them.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricValue(Number);

impl MetricValue {
    pub fn as_number(&self) -> &Number {
        &self.0
    }

    pub fn as_f64(&self) -> f64 {
        self.0.as_f64().unwrap_or(f64::NAN)
    }

    /// Bytes this value adds to the 25,000-byte budget: its JSON text.
    fn encoded_len(&self) -> usize {
        self.0.to_string().len()
    }
}

impl From<Number> for MetricValue {
    fn from(n: Number) -> Self {
        Self(n)
    }
}

impl From<i64> for MetricValue {
    fn from(n: i64) -> Self {
        Self(Number::from(n))
    }
}

impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why one reported metric was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectionReason {
    /// The value is not a number, a numeric string, or a boolean.
    NonNumeric,
    /// The value is a number a 64-bit float cannot hold (`1e400`, or `1e-400`, which would
    /// read as 0).
    OutOfRange,
    /// The key is one of [`RESERVED_NAMES`].
    ReservedName,
    /// The key is empty.
    EmptyName,
    /// Accepting the key would make more than [`MAX_METRICS`] metrics.
    TooManyMetrics,
    /// Accepting the value would make more than [`MAX_METRICS_BYTES`] bytes.
    TooLarge,
}

impl RejectionReason {
    /// A short, stable label for metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NonNumeric => "non_numeric",
            Self::OutOfRange => "out_of_range",
            Self::ReservedName => "reserved_name",
            Self::EmptyName => "empty_name",
            Self::TooManyMetrics => "too_many_metrics",
            Self::TooLarge => "too_large",
        }
    }
}

/// One refused metric: which key, and why, in words that name the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricRejection {
    pub key: String,
    pub reason: RejectionReason,
    pub message: String,
}

/// Characters of a refused key echoed back and logged; the rest is summarised. A refused key
/// can be as long as the body (once 15 MB), and its text is the algorithm's, not ours.
pub(crate) const SHOWN_KEY_CHARS: usize = 64;

/// `key` as it may be shown in an answer or a log: at most [`SHOWN_KEY_CHARS`] characters, with
/// control characters escaped (a line break would forge a log line, an ESC drive a terminal).
pub(crate) fn shown_key(key: &str) -> String {
    let mut out = String::new();
    let mut chars = key.chars();
    for c in chars.by_ref().take(SHOWN_KEY_CHARS) {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    if chars.next().is_some() {
        out.push_str(&format!("… ({} bytes in all)", key.len()));
    }
    out
}

impl MetricRejection {
    pub(crate) fn new(key: &str, reason: RejectionReason, detail: &str) -> Self {
        let key = &shown_key(key);
        let message = match reason {
            RejectionReason::NonNumeric => format!(
                "insight `{key}`: value {detail} is not numeric (numbers, numeric strings and booleans are accepted)"
            ),
            RejectionReason::OutOfRange => format!(
                "insight `{key}`: value {detail} does not fit a 64-bit float (magnitudes from about 2.2e-308 to 1.8e308, or 0)"
            ),
            RejectionReason::ReservedName if key.starts_with(RESERVED_PREFIX) => format!(
                "insight `{key}`: names starting with `{RESERVED_PREFIX}` are reserved for the series Insights derives (executions, failures)"
            ),
            RejectionReason::ReservedName => {
                format!("insight `{key}`: the name is reserved for the payload's operational keys")
            }
            RejectionReason::EmptyName => "insight key must not be empty".to_string(),
            RejectionReason::TooManyMetrics => {
                format!("insight `{key}`: an execution may report at most {MAX_METRICS} metrics")
            }
            RejectionReason::TooLarge => format!(
                "insight `{key}`: an execution may report at most {MAX_METRICS_BYTES} bytes of metric keys plus values"
            ),
        };
        Self {
            key: key.to_string(),
            reason,
            message,
        }
    }
}

/// The metrics of one execution, in the order they were first reported. A later report of a
/// key replaces its value in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricSet {
    entries: Vec<(String, MetricValue)>,
    bytes: usize,
}

impl MetricSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of keys plus values held, as counted against [`MAX_METRICS_BYTES`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetricValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, key: &str) -> Option<&MetricValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Adds or replaces one metric, or says why it cannot. On refusal nothing changes.
    pub fn insert(&mut self, key: &str, value: MetricValue) -> Result<(), MetricRejection> {
        if key.is_empty() {
            return Err(MetricRejection::new(key, RejectionReason::EmptyName, ""));
        }
        if RESERVED_NAMES.contains(&key) || key.starts_with(RESERVED_PREFIX) {
            return Err(MetricRejection::new(key, RejectionReason::ReservedName, ""));
        }
        let new_len = value.encoded_len();
        match self.entries.iter().position(|(k, _)| k == key) {
            Some(i) => {
                let old_len = self.entries[i].1.encoded_len();
                let bytes = self.bytes - old_len + new_len;
                if bytes > MAX_METRICS_BYTES {
                    return Err(MetricRejection::new(key, RejectionReason::TooLarge, ""));
                }
                self.entries[i].1 = value;
                self.bytes = bytes;
            }
            None => {
                if self.entries.len() >= MAX_METRICS {
                    return Err(MetricRejection::new(
                        key,
                        RejectionReason::TooManyMetrics,
                        "",
                    ));
                }
                let bytes = self.bytes + key.len() + new_len;
                if bytes > MAX_METRICS_BYTES {
                    return Err(MetricRejection::new(key, RejectionReason::TooLarge, ""));
                }
                self.entries.push((key.to_string(), value));
                self.bytes = bytes;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_the_derived_series_are_reserved() {
        let mut set = MetricSet::new();
        let r = set.insert("insights.executions", 1.into()).unwrap_err();
        assert_eq!(r.reason, RejectionReason::ReservedName);
        assert!(
            r.message
                .contains("reserved for the series Insights derives"),
            "{}",
            r.message
        );
        set.insert("insightsful", 1.into()).unwrap();
    }

    #[test]
    fn a_refused_key_is_cut_and_its_control_characters_escaped() {
        let long = "k".repeat(15 << 20);
        let r = MetricSet::new()
            .insert("", MetricValue::from(1))
            .unwrap_err();
        assert_eq!(r.reason, RejectionReason::EmptyName);
        let shown = shown_key(&long);
        assert!(
            shown.len() < 120 && shown.ends_with("(15728640 bytes in all)"),
            "{shown}"
        );
        let forged = "evil\n2026-01-01T00:00:00Z ERROR forged\u{1b}[31m";
        let shown = shown_key(forged);
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
        assert!(
            shown.contains("\\n2026") && shown.contains("\\u{1b}[31m"),
            "{shown}"
        );
        let mut set = MetricSet::new();
        for i in 0..MAX_METRICS {
            set.insert(&format!("m{i}"), 1.into()).unwrap();
        }
        let r = set.insert(forged, 1.into()).unwrap_err();
        assert!(!r.key.chars().any(char::is_control) && !r.message.chars().any(char::is_control));
    }

    #[test]
    fn later_value_wins_and_keeps_first_position() {
        let mut m = MetricSet::new();
        m.insert("a", 1.into()).unwrap();
        m.insert("b", 2.into()).unwrap();
        m.insert("a", 3.into()).unwrap();
        let got: Vec<_> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(got, ["a=3", "b=2"]);
        assert_eq!(m.bytes(), 4);
    }

    #[test]
    fn reserved_names_are_refused() {
        let mut m = MetricSet::new();
        for name in RESERVED_NAMES {
            let err = m.insert(name, 1.into()).unwrap_err();
            assert_eq!(err.reason, RejectionReason::ReservedName);
            assert!(err.message.contains(name), "{}", err.message);
        }
        assert!(m.is_empty());
    }

    #[test]
    fn the_26th_metric_is_refused_but_replacing_one_is_not() {
        let mut m = MetricSet::new();
        for i in 0..MAX_METRICS {
            m.insert(&format!("m{i}"), 1.into()).unwrap();
        }
        let err = m.insert("one_more", 1.into()).unwrap_err();
        assert_eq!(err.reason, RejectionReason::TooManyMetrics);
        assert!(
            err.message.contains("at most 25 metrics"),
            "{}",
            err.message
        );
        m.insert("m3", 7.into()).unwrap();
        assert_eq!(m.len(), MAX_METRICS);
    }

    #[test]
    fn byte_budget_counts_keys_and_values() {
        let mut m = MetricSet::new();
        let big = "k".repeat(MAX_METRICS_BYTES - 1);
        m.insert(&big, 1.into()).unwrap();
        assert_eq!(m.bytes(), MAX_METRICS_BYTES);
        let err = m.insert("x", 1.into()).unwrap_err();
        assert_eq!(err.reason, RejectionReason::TooLarge);
        assert!(err.message.contains("25000 bytes"), "{}", err.message);
        // Replacing with a value of the same length still fits; a longer one does not.
        m.insert(&big, 2.into()).unwrap();
        let err = m.insert(&big, 22.into()).unwrap_err();
        assert_eq!(err.reason, RejectionReason::TooLarge);
        assert_eq!(m.get(&big), Some(&MetricValue::from(2)));
    }
}
