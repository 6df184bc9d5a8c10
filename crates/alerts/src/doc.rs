//! Reading a JSON document field by field, collecting every error with the path of its field,
//! so that one 400 lists everything that is wrong.

use serde_json::{Map, Value};

use crate::error::FieldError;
use crate::span::Span;

pub(crate) struct Reader<'a> {
    pub(crate) errors: &'a mut Vec<FieldError>,
}

impl Reader<'_> {
    pub(crate) fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    pub(crate) fn object<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
    ) -> Option<&'v Map<String, Value>> {
        match v.as_object() {
            Some(m) => Some(m),
            None => {
                self.fail(
                    if path.is_empty() { "body" } else { path },
                    "must be a JSON object",
                );
                None
            }
        }
    }

    /// Refuses fields that the document does not know, so that a typo is not silently ignored.
    pub(crate) fn known(&mut self, m: &Map<String, Value>, path: &str, allowed: &[&str]) {
        for k in m.keys() {
            if !allowed.contains(&k.as_str()) {
                let shown: String = k.chars().take(64).collect();
                self.fail(
                    join(path, &shown.escape_debug().to_string()),
                    format!("is not a known field; known fields: {}", allowed.join(", ")),
                );
            }
        }
    }

    pub(crate) fn string(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
        max: usize,
    ) -> Option<String> {
        let field = join(path, key);
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => {
                self.fail(field, "must not be empty");
                None
            }
            Some(Value::String(s)) if s.chars().count() > max => {
                self.fail(
                    field,
                    format!("is {} characters; at most {max}", s.chars().count()),
                );
                None
            }
            Some(Value::String(s)) if s.chars().any(char::is_control) => {
                self.fail(field, "must not hold control characters");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }

    pub(crate) fn required_string(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
        max: usize,
    ) -> Option<String> {
        if matches!(m.get(key), None | Some(Value::Null)) {
            self.fail(join(path, key), "is required");
            return None;
        }
        self.string(m, path, key, max)
    }

    pub(crate) fn number(&mut self, m: &Map<String, Value>, path: &str, key: &str) -> Option<f64> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_f64() {
                Some(f) if f.is_finite() => Some(f),
                _ => {
                    self.fail(join(path, key), "must be a finite number");
                    None
                }
            },
            Some(_) => {
                self.fail(join(path, key), "must be a number");
                None
            }
        }
    }

    /// A duration such as `5m`, between `min` and `max`.
    pub(crate) fn span(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
        min: Span,
        max: Span,
    ) -> Option<Span> {
        let field = join(path, key);
        let s = match m.get(key) {
            None | Some(Value::Null) => return None,
            Some(Value::String(s)) => s,
            Some(_) => {
                self.fail(
                    field,
                    "must be a duration string such as \"30s\", \"5m\" or \"1h\"",
                );
                return None;
            }
        };
        match Span::parse(s) {
            Ok(d) if d < min => {
                self.fail(field, format!("is {d}; at least {min}"));
                None
            }
            Ok(d) if d > max => {
                self.fail(field, format!("is {d}; at most {max}"));
                None
            }
            Ok(d) => Some(d),
            Err(problem) => {
                self.fail(field, problem);
                None
            }
        }
    }

    pub(crate) fn strings(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
        max_items: usize,
        max_len: usize,
    ) -> Option<Vec<String>> {
        let field = join(path, key);
        let items = match m.get(key) {
            None | Some(Value::Null) => return None,
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.fail(field, "must be an array of strings");
                return None;
            }
        };
        if items.len() > max_items {
            self.fail(
                field,
                format!("has {} items; at most {max_items}", items.len()),
            );
            return None;
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, v) in items.iter().enumerate() {
            match v.as_str() {
                Some(s) if !s.is_empty() && s.chars().count() <= max_len => out.push(s.to_string()),
                Some(_) => self.fail(
                    format!("{field}[{i}]"),
                    format!("must be 1 to {max_len} characters"),
                ),
                None => self.fail(format!("{field}[{i}]"), "must be a string"),
            }
        }
        Some(out)
    }

    /// An object of string values (tags, headers).
    pub(crate) fn string_map(
        &mut self,
        m: &Map<String, Value>,
        path: &str,
        key: &str,
        max_items: usize,
        max_key: usize,
        max_value: usize,
    ) -> std::collections::BTreeMap<String, String> {
        let field = join(path, key);
        let mut out = std::collections::BTreeMap::new();
        let obj = match m.get(key) {
            None | Some(Value::Null) => return out,
            Some(Value::Object(o)) => o,
            Some(_) => {
                self.fail(field, "must be an object of strings");
                return out;
            }
        };
        if obj.len() > max_items {
            self.fail(
                field,
                format!("has {} entries; at most {max_items}", obj.len()),
            );
            return out;
        }
        for (k, v) in obj {
            let shown: String = k.chars().take(64).collect();
            let kf = format!("{field}.{}", shown.escape_debug());
            let key_ok = !k.is_empty()
                && k.len() <= max_key
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !key_ok {
                self.fail(
                    kf,
                    format!(
                        "keys are 1 to {max_key} characters of letters, digits, `_`, `-` and `.`"
                    ),
                );
                continue;
            }
            match v.as_str() {
                Some(s) if s.chars().count() <= max_value && !s.chars().any(char::is_control) => {
                    out.insert(k.clone(), s.to_string());
                }
                Some(_) => self.fail(
                    kf,
                    format!("must be at most {max_value} characters, without control characters"),
                ),
                None => self.fail(kf, "must be a string"),
            }
        }
        out
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
