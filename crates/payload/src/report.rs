//! Parsing what an algorithm reports through `POST /v1/insights`.
//!
//! Every official client sends a JSON array of `{"insight_key": ..., "insight_value": ...}`:
//! the Python and R clients send numbers (and booleans), the Java client sends every value as a
//! string (`"0.2"`). All become [`MetricValue`]s; booleans become `1` / `0`.

use serde::Deserialize;
use serde_json::{Number, Value};
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
    insight_value: Value,
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
            let value = to_metric(&item.insight_value).ok_or_else(|| {
                MetricRejection::new(
                    &item.insight_key,
                    RejectionReason::NonNumeric,
                    &truncate(&item.insight_value.to_string(), 64),
                )
            });
            (item.insight_key, value)
        })
        .collect())
}

fn to_metric(value: &Value) -> Option<MetricValue> {
    match value {
        Value::Number(n) => Some(n.clone().into()),
        Value::Bool(b) => Some(i64::from(*b).into()),
        // The Java client sends every value as a string.
        Value::String(s) => match s.trim() {
            "true" => Some(1.into()),
            "false" => Some(0.into()),
            t => serde_json::from_str::<Number>(t).ok().map(Into::into),
        },
        // R's jsonlite, without auto_unbox, wraps a scalar in a one-element array.
        Value::Array(a) if a.len() == 1 && !a[0].is_array() => to_metric(&a[0]),
        _ => None,
    }
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
