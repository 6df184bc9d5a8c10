//! A generic HTTP endpoint: the configured method, headers and auth, an `Idempotency-Key`,
//! and either the endpoint's body template or the status as JSON with `"_version": 1`.
//!
//! InfluxDB 2 counts only HTTP 200 as success, so a receiver answering 201, 202 or 204 (all
//! of which say "accepted") gets the notification again and again. We accept every 2xx: a
//! receiver that means "no" says so with a 4xx or 5xx. And InfluxDB ignores the configured
//! method, headers and body template (influxdb#15242); they are honoured here.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Call, SendError, Sent};
use crate::endpoint::{HttpAuth, Method, Secret};
use crate::notification::Notification;
use crate::template::{Template, Vars};

pub(super) struct Target<'a> {
    pub(super) url: &'a str,
    pub(super) method: Method,
    pub(super) headers: &'a BTreeMap<String, Secret>,
    pub(super) auth: &'a HttpAuth,
    pub(super) body_template: Option<&'a Template>,
}

pub(super) async fn send(
    call: &Call<'_>,
    target: &Target<'_>,
    n: &Notification,
) -> Result<Sent, SendError> {
    let method = match target.method {
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
    };
    let mut request = call
        .client
        .request(method, target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &n.id);
    for (name, value) in target.headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| SendError::give_up(format!("the header name {name:?} is not valid")))?;
        let mut value = reqwest::header::HeaderValue::from_str(value.expose()).map_err(|_| {
            // The value may be a secret: only the header's name is said.
            SendError::give_up(format!("the value of the header {name} is not valid"))
        })?;
        value.set_sensitive(true);
        request = request.header(name, value);
    }
    request = match target.auth {
        HttpAuth::None => request,
        HttpAuth::Basic { username, password } => {
            request.basic_auth(username, Some(password.expose()))
        }
        HttpAuth::Bearer { token } => request.bearer_auth(token.expose()),
    };
    let body = match target.body_template {
        Some(t) => render(t, n),
        None => default_body(n).to_string(),
    };
    call.deliver(request.body(body)).await
}

/// The status as InfluxDB's HTTP endpoint sends it (`"_version": 1`), with every field of
/// the notification.
pub(super) fn default_body(n: &Notification) -> Value {
    json!({
        "_version": 1,
        "id": n.id,
        "test": n.test,
        "check_id": n.check_id,
        "check_name": n.check_name,
        "rule_id": n.rule_id,
        "rule_name": n.rule_name,
        "level": n.level,
        "previous_level": n.previous_level,
        "value": n.value,
        "message": n.message,
        "tags": n.tags,
        "algorithm": n.algorithm,
        "version": n.version,
        "metric": n.metric,
        "source_time": n.source_time,
        "status_time": n.status_time,
        "since": n.since,
        "dedup_key": n.dedup_key,
    })
}

/// The body template with the notification's variables. The body is sent as JSON, so each
/// value is escaped as the inside of a JSON string: a check named `say "hi"` does not break
/// `{"text": "{{check}}"}`, and a number is unchanged. `fn` and `window` are not part of a
/// notification and render empty, as does `value` when the window had no data.
pub(super) fn render(template: &Template, n: &Notification) -> String {
    let escaped_tags: BTreeMap<String, String> = n
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), json_escape(v)))
        .collect();
    let mut vars = Vars {
        values: BTreeMap::new(),
        tags: &escaped_tags,
    };
    let mut set = |k: &'static str, v: &str| {
        vars.values.insert(k, json_escape(v));
    };
    set("check", &n.check_name);
    set("level", n.level.as_str());
    set("previous_level", n.previous_level.as_str());
    if let Some(v) = n.value {
        set("value", &v.to_string());
    }
    if let Some(m) = &n.metric {
        set("metric", m);
    }
    set("algorithm", &n.algorithm);
    set("version", &n.version);
    set("time", &n.status_time);
    set("since", &n.since);
    if let Some(r) = &n.rule_name {
        set("rule", r);
    }
    template.render(&vars)
}

/// `s` as the inside of a JSON string (no surrounding quotes).
fn json_escape(s: &str) -> String {
    let quoted = Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escape_keeps_plain_text_and_escapes_quotes() {
        assert_eq!(json_escape("0.75"), "0.75");
        assert_eq!(json_escape("say \"hi\"\n"), "say \\\"hi\\\"\\n");
    }
}
