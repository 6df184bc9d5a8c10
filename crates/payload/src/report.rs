//! Parsing what an algorithm reports through `POST /v1/insights`.
//!
//! Every official client sends a JSON array of `{"insight_key": ..., "insight_value": ...}`:
//! the Python and R clients send numbers (and booleans), the Java client sends every value as a
//! string (`"0.2"`). All become [`MetricValue`]s; booleans become `1` / `0`.

use serde::Deserialize;
use serde_json::Number;
use serde_json::value::RawValue;
use thiserror::Error;

use crate::{MetricRejection, MetricValue, RejectionReason};

/// The body as a whole could not be read; nothing in it was accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReportError {
    #[error(
        "the body must be a JSON array of {{\"insight_key\": string, \"insight_value\": number}} objects: {0}"
    )]
    Malformed(String),
}

#[derive(Deserialize)]
struct Item {
    insight_key: String,
    /// As written: a number that does not fit an `f64` (`1e-400`, `1e400`) is refused by name
    /// rather than read as `0` or infinity, or failing the whole body.
    insight_value: Box<RawValue>,
}

/// One item of a report: its key, and either its value or why the value was refused.
pub type ReportItem = (String, Result<MetricValue, MetricRejection>);

/// Parses a report body. A malformed body is an error as a whole; a well-formed body yields one
/// entry per item, each accepted or refused on its own, so that the valid part is kept.
pub fn parse(body: &[u8]) -> Result<Vec<ReportItem>, ReportError> {
    let items: Vec<Item> =
        serde_json::from_slice(body).map_err(|e| ReportError::Malformed(e.to_string()))?;
    Ok(items
        .into_iter()
        .map(|item| {
            let value = to_metric(item.insight_value.get()).map_err(|reason| {
                MetricRejection::new(
                    &item.insight_key,
                    reason,
                    &truncate(item.insight_value.get(), 64),
                )
            });
            (item.insight_key, value)
        })
        .collect())
}

/// A reported value (JSON text) as a metric, or why it is not one.
fn to_metric(raw: &str) -> Result<MetricValue, RejectionReason> {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => number(raw),
        Some(b't') if raw == "true" => Ok(1.into()),
        Some(b'f') if raw == "false" => Ok(0.into()),
        // The Java client sends every value as a string.
        Some(b'"') => {
            let s: String = serde_json::from_str(raw).map_err(|_| RejectionReason::NonNumeric)?;
            match s.trim() {
                "true" => Ok(1.into()),
                "false" => Ok(0.into()),
                t if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => number(t),
                _ => Err(RejectionReason::NonNumeric),
            }
        }
        // R's jsonlite, without auto_unbox, wraps a scalar in a one-element array.
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(raw) {
            Ok(a) if a.len() == 1 && !a[0].get().trim_start().starts_with('[') => {
                to_metric(a[0].get())
            }
            _ => Err(RejectionReason::NonNumeric),
        },
        _ => Err(RejectionReason::NonNumeric),
    }
}

/// A JSON number literal as a metric: exact integers stay integers; a float must be finite
/// and, unless it is zero, not so small that it reads as zero.
fn number(text: &str) -> Result<MetricValue, RejectionReason> {
    match serde_json::from_str::<Number>(text) {
        Ok(n) => {
            if n.as_f64() == Some(0.0) && !n.is_i64() && !n.is_u64() && has_nonzero_digit(text) {
                return Err(RejectionReason::OutOfRange);
            }
            Ok(n.into())
        }
        // Valid JSON that serde cannot hold as a number: too large for an f64.
        Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            Err(RejectionReason::OutOfRange)
        }
        Err(_) => Err(RejectionReason::NonNumeric),
    }
}

/// Whether the mantissa of a number literal has a digit other than 0 (`1e-400` does, `0.0e5`
/// does not).
fn has_nonzero_digit(text: &str) -> bool {
    text.split(['e', 'E'])
        .next()
        .is_some_and(|m| m.bytes().any(|b| (b'1'..=b'9').contains(&b)))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(body: &str) -> Vec<(String, Result<String, RejectionReason>)> {
        parse(body.as_bytes())
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.map(|v| v.to_string()).map_err(|e| e.reason)))
            .collect()
    }

    #[test]
    fn numbers_an_f64_cannot_hold_are_refused_by_name_not_read_as_zero() {
        let got = values(
            r#"[{"insight_key": "tiny", "insight_value": 1e-400},
                {"insight_key": "huge", "insight_value": 1e400},
                {"insight_key": "java", "insight_value": "-2.5e-999"},
                {"insight_key": "r", "insight_value": [1e-400]},
                {"insight_key": "zero", "insight_value": 0.0e5},
                {"insight_key": "negzero", "insight_value": -0},
                {"insight_key": "small", "insight_value": 2.5e-300},
                {"insight_key": "big_int", "insight_value": 123456789012345678901234567890}]"#,
        );
        let reasons: Vec<_> = got.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        assert_eq!(
            reasons,
            [
                ("tiny", Err(RejectionReason::OutOfRange)),
                ("huge", Err(RejectionReason::OutOfRange)),
                ("java", Err(RejectionReason::OutOfRange)),
                ("r", Err(RejectionReason::OutOfRange)),
                ("zero", Ok("0.0".into())),
                ("negzero", Ok("-0.0".into())),
                ("small", Ok("2.5e-300".into())),
                ("big_int", Ok("1.2345678901234568e+29".into())),
            ]
        );
        let r = parse(br#"[{"insight_key": "tiny", "insight_value": 1e-400}]"#).unwrap();
        let message = r[0].1.as_ref().unwrap_err().message.clone();
        assert!(
            message.contains("1e-400 does not fit a 64-bit float"),
            "{message}"
        );
    }

    #[test]
    fn python_client_body() {
        let got = values(
            r#"[{"insight_key": "risk_score", "insight_value": 0.2}, {"insight_key": "n", "insight_value": 3}]"#,
        );
        assert_eq!(
            got,
            [
                ("risk_score".into(), Ok("0.2".into())),
                ("n".into(), Ok("3".into()))
            ]
        );
    }

    #[test]
    fn java_client_sends_strings() {
        let got = values(
            r#"[{"insight_key": "a", "insight_value": "0.2"}, {"insight_key": "b", "insight_value": "1.0E3"}, {"insight_key": "c", "insight_value": "true"}]"#,
        );
        assert_eq!(got[0].1, Ok("0.2".into()));
        assert_eq!(
            got[1].1.as_ref().map(|s| s.parse::<f64>().unwrap()),
            Ok(1000.0)
        );
        assert_eq!(got[2].1, Ok("1".into()));
    }

    #[test]
    fn regression_reported_floats_keep_every_digit() {
        // serde_json's default float parsing is not correctly rounded; with `float_roundtrip`
        // the value the algorithm sent is the value the payload carries (found by the bridge's
        // property test).
        let got = values(r#"[{"insight_key": "x", "insight_value": -971737139672.4539}]"#);
        assert_eq!(got[0].1, Ok("-971737139672.4539".into()));
    }

    #[test]
    fn booleans_become_one_and_zero() {
        let got = values(
            r#"[{"insight_key": "approved", "insight_value": true}, {"insight_key": "x", "insight_value": false}]"#,
        );
        assert_eq!(got[0].1, Ok("1".into()));
        assert_eq!(got[1].1, Ok("0".into()));
    }

    #[test]
    fn r_client_one_element_arrays() {
        let got = values(r#"[{"insight_key": "k", "insight_value": [0.5]}]"#);
        assert_eq!(got[0].1, Ok("0.5".into()));
        let got = values(r#"[{"insight_key": "k", "insight_value": [1, 2]}]"#);
        assert_eq!(got[0].1, Err(RejectionReason::NonNumeric));
    }

    #[test]
    fn non_numeric_values_are_refused_one_by_one() {
        let got = values(
            r#"[{"insight_key": "ok", "insight_value": 1}, {"insight_key": "s", "insight_value": "high"}, {"insight_key": "n", "insight_value": null}, {"insight_key": "o", "insight_value": {"a": 1}}, {"insight_key": "inf", "insight_value": "Infinity"}]"#,
        );
        assert_eq!(got[0].1, Ok("1".into()));
        for (k, v) in &got[1..] {
            assert_eq!(v, &Err(RejectionReason::NonNumeric), "{k}");
        }
        let (_, rejected) = parse(br#"[{"insight_key": "s", "insight_value": "high"}]"#)
            .unwrap()
            .remove(0);
        let msg = rejected.unwrap_err().message;
        assert!(
            msg.contains("`s`") && msg.contains("\"high\"") && msg.contains("not numeric"),
            "{msg}"
        );
    }

    #[test]
    fn malformed_bodies_are_refused_whole() {
        for body in [
            "",
            "{}",
            r#"{"risk_score": 1}"#,
            r#"[{"key": "a", "value": 1}]"#,
            "[1]",
            "not json",
        ] {
            assert!(parse(body.as_bytes()).is_err(), "{body:?}");
        }
        assert_eq!(parse(b"[]").unwrap(), vec![]);
    }
}
