//! Notification endpoints: where a notification goes, and the secrets it needs to get there.
//!
//! Secrets (a Slack webhook URL, a PagerDuty routing key, an HTTP endpoint's URL, header
//! values, password and token, an SMTP password) are sealed with the data directory's key
//! before they are stored, are never shown (a view says only whether each is set), and are
//! kept when an update leaves them out.

use std::collections::BTreeMap;

use insights_store::SecretBox;
use serde_json::{Map, Value, json};

use crate::doc::{Reader, join};
use crate::error::{AlertError, FieldError};
use crate::template::Template;

pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// A secret in memory; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HttpAuth {
    None,
    Basic { username: String, password: Secret },
    Bearer { token: Secret },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain SMTP (a relay on the same machine or network).
    None,
    /// Plain, then upgraded with STARTTLS (required, never skipped).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EndpointKind {
    Slack {
        url: Secret,
        channel: Option<String>,
    },
    PagerDuty {
        routing_key: Secret,
        url: String,
        client_url: Option<String>,
    },
    Http {
        url: Secret,
        method: Method,
        headers: BTreeMap<String, Secret>,
        auth: HttpAuth,
        body_template: Option<Template>,
    },
    Email {
        host: String,
        port: u16,
        tls: TlsMode,
        username: Option<String>,
        password: Option<Secret>,
        from: String,
        to: Vec<String>,
    },
    Alertmanager {
        url: String,
    },
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub name: String,
    pub kind: EndpointKind,
    pub created_at: String,
    pub updated_at: String,
}

impl Endpoint {
    pub fn kind_name(&self) -> &'static str {
        kind_name(&self.kind)
    }

    /// What the API shows: everything but the secrets, and whether each is set.
    pub fn view(&self) -> Value {
        let mut v = self.public_fields();
        v["id"] = json!(self.id);
        v["name"] = json!(self.name);
        v["kind"] = json!(self.kind_name());
        v["created_at"] = json!(self.created_at);
        v["updated_at"] = json!(self.updated_at);
        match &self.kind {
            EndpointKind::Slack { .. } => v["url_set"] = json!(true),
            EndpointKind::PagerDuty { .. } => v["routing_key_set"] = json!(true),
            EndpointKind::Http {
                url, headers, auth, ..
            } => {
                v["url_set"] = json!(true);
                v["url_host"] = json!(host_of(url.expose()));
                v["headers_set"] = json!(headers.keys().collect::<Vec<_>>());
                match auth {
                    HttpAuth::None => v["auth"] = json!({"type": "none"}),
                    HttpAuth::Basic { username, .. } => {
                        v["auth"] =
                            json!({"type": "basic", "username": username, "password_set": true})
                    }
                    HttpAuth::Bearer { .. } => {
                        v["auth"] = json!({"type": "bearer", "token_set": true})
                    }
                }
            }
            EndpointKind::Email { password, .. } => v["password_set"] = json!(password.is_some()),
            EndpointKind::Alertmanager { .. } => {}
        }
        v
    }

    fn public_fields(&self) -> Value {
        match &self.kind {
            EndpointKind::Slack { channel, .. } => json!({ "channel": channel }),
            EndpointKind::PagerDuty {
                url, client_url, ..
            } => json!({ "url": url, "client_url": client_url }),
            EndpointKind::Http {
                method,
                body_template,
                ..
            } => json!({
                "method": method.as_str(),
                "body_template": body_template.as_ref().map(Template::source),
            }),
            EndpointKind::Email {
                host,
                port,
                tls,
                username,
                from,
                to,
                ..
            } => json!({
                "host": host, "port": port,
                "tls": match tls { TlsMode::None => "none", TlsMode::Starttls => "starttls", TlsMode::Tls => "tls" },
                "username": username, "from": from, "to": to,
            }),
            EndpointKind::Alertmanager { url } => json!({ "url": url }),
        }
    }

    /// The stored form: the view's public fields plus each secret sealed.
    pub fn stored(&self, secrets: &SecretBox) -> Value {
        let mut v = self.view();
        let mut sealed = Map::new();
        let mut seal = |k: &str, s: &Secret| {
            sealed.insert(k.to_string(), json!(secrets.seal(s.expose())));
        };
        match &self.kind {
            EndpointKind::Slack { url, .. } => seal("url", url),
            EndpointKind::PagerDuty { routing_key, .. } => seal("routing_key", routing_key),
            EndpointKind::Http {
                url, headers, auth, ..
            } => {
                seal("url", url);
                for (k, h) in headers {
                    seal(&format!("headers.{k}"), h);
                }
                match auth {
                    HttpAuth::None => {}
                    HttpAuth::Basic { password, .. } => seal("auth.password", password),
                    HttpAuth::Bearer { token } => seal("auth.token", token),
                }
            }
            EndpointKind::Email { password, .. } => {
                if let Some(p) = password {
                    seal("password", p)
                }
            }
            EndpointKind::Alertmanager { .. } => {}
        }
        v["sealed"] = Value::Object(sealed);
        v
    }

    /// Reads the stored form back, opening its secrets.
    pub fn from_stored(v: &Value, secrets: &SecretBox) -> Result<Endpoint, AlertError> {
        let sealed = v.get("sealed").and_then(Value::as_object);
        let open = |k: &str| -> Result<Option<Secret>, AlertError> {
            match sealed.and_then(|s| s.get(k)).and_then(Value::as_str) {
                Some(s) => Ok(Some(Secret(secrets.open(s)?))),
                None => Ok(None),
            }
        };
        // Rebuild the client form (secrets in plain) and validate it as one.
        let mut body = v.clone();
        let obj = body.as_object_mut().expect("stored endpoints are objects");
        obj.remove("sealed");
        for k in [
            "url_set",
            "routing_key_set",
            "url_host",
            "headers_set",
            "password_set",
        ] {
            obj.remove(k);
        }
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "slack" => {
                obj.insert("url".into(), json!(open("url")?.map(|s| s.0)));
            }
            "pagerduty" => {
                obj.insert(
                    "routing_key".into(),
                    json!(open("routing_key")?.map(|s| s.0)),
                );
            }
            "http" => {
                obj.insert("url".into(), json!(open("url")?.map(|s| s.0)));
                let mut headers = Map::new();
                if let Some(names) = v.get("headers_set").and_then(Value::as_array) {
                    for n in names.iter().filter_map(Value::as_str) {
                        if let Some(h) = open(&format!("headers.{n}"))? {
                            headers.insert(n.to_string(), json!(h.0));
                        }
                    }
                }
                obj.insert("headers".into(), Value::Object(headers));
                let mut auth = v.get("auth").cloned().unwrap_or(json!({"type": "none"}));
                if let Some(a) = auth.as_object_mut() {
                    a.remove("password_set");
                    a.remove("token_set");
                    if let Some(p) = open("auth.password")? {
                        a.insert("password".into(), json!(p.0));
                    }
                    if let Some(t) = open("auth.token")? {
                        a.insert("token".into(), json!(t.0));
                    }
                }
                obj.insert("auth".into(), auth);
            }
            "email" => {
                if let Some(p) = open("password")? {
                    obj.insert("password".into(), json!(p.0));
                }
            }
            _ => {}
        }
        let id = v["id"].as_str().unwrap_or_default().to_string();
        let created = v["created_at"].as_str().unwrap_or_default().to_string();
        let updated = v["updated_at"].as_str().unwrap_or_default().to_string();
        Endpoint::from_document(&body, None, id, created, updated).map_err(|e| {
            AlertError::Internal(format!("a stored endpoint no longer validates: {e}"))
        })
    }

    /// Validates an endpoint document as a client sent it. On an update, `previous` supplies
    /// the secrets the body leaves out.
    pub fn from_document(
        body: &Value,
        previous: Option<&Endpoint>,
        id: String,
        created_at: String,
        updated_at: String,
    ) -> Result<Endpoint, AlertError> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut r = Reader {
            errors: &mut errors,
        };
        let Some(m) = r.object(body, "") else {
            return Err(AlertError::Invalid(errors));
        };
        let name = r.required_string(m, "", "name", 200);
        let kind = r.required_string(m, "", "kind", 20);
        if let (Some(p), Some(k)) = (previous, kind.as_deref())
            && p.kind_name() != k
        {
            r.fail(
                "kind",
                format!(
                    "is {} and cannot change; create another endpoint",
                    p.kind_name()
                ),
            );
        }
        let prev = previous.map(|p| &p.kind);
        let common = ["id", "name", "kind", "created_at", "updated_at"];
        let allowed = |extra: &[&'static str]| -> Vec<&'static str> {
            common.iter().chain(extra).copied().collect()
        };
        let secret = |r: &mut Reader<'_>, key: &str, kept: Option<&Secret>| -> Option<Secret> {
            match r.string(m, "", key, 2048) {
                Some(s) => Some(Secret(s)),
                None => kept.cloned(),
            }
        };
        let endpoint_kind = match kind.as_deref() {
            Some("slack") => {
                r.known(m, "", &allowed(&["url", "channel"]));
                let kept = match prev {
                    Some(EndpointKind::Slack { url, .. }) => Some(url),
                    _ => None,
                };
                let url = secret(&mut r, "url", kept);
                if let Some(u) = &url {
                    check_url(&mut r, "url", u.expose());
                } else {
                    r.fail("url", "is required: the Slack incoming webhook URL");
                }
                let channel = r.string(m, "", "channel", 100);
                url.map(|url| EndpointKind::Slack { url, channel })
            }
            Some("pagerduty") => {
                r.known(m, "", &allowed(&["routing_key", "url", "client_url"]));
                let kept = match prev {
                    Some(EndpointKind::PagerDuty { routing_key, .. }) => Some(routing_key),
                    _ => None,
                };
                let key = secret(&mut r, "routing_key", kept);
                if key.is_none() {
                    r.fail(
                        "routing_key",
                        "is required: the integration's 32-character routing key",
                    );
                }
                let url = r
                    .string(m, "", "url", 2048)
                    .unwrap_or_else(|| PAGERDUTY_EVENTS_URL.to_string());
                check_url(&mut r, "url", &url);
                let client_url = r.string(m, "", "client_url", 2048);
                if let Some(c) = &client_url {
                    check_url(&mut r, "client_url", c);
                }
                key.map(|routing_key| EndpointKind::PagerDuty {
                    routing_key,
                    url,
                    client_url,
                })
            }
            Some("http") => {
                r.known(
                    m,
                    "",
                    &allowed(&["url", "method", "headers", "auth", "body_template"]),
                );
                let (kept_url, kept_headers, kept_auth) = match prev {
                    Some(EndpointKind::Http {
                        url, headers, auth, ..
                    }) => (Some(url), Some(headers), Some(auth)),
                    _ => (None, None, None),
                };
                let url = secret(&mut r, "url", kept_url);
                match &url {
                    Some(u) => check_url(&mut r, "url", u.expose()),
                    None => r.fail("url", "is required"),
                }
                let method = match m.get("method").and_then(Value::as_str) {
                    None => Method::Post,
                    Some("POST") => Method::Post,
                    Some("PUT") => Method::Put,
                    Some("PATCH") => Method::Patch,
                    Some(_) => {
                        r.fail("method", "must be POST, PUT or PATCH");
                        Method::Post
                    }
                };
                let headers: BTreeMap<String, Secret> = if m.contains_key("headers") {
                    let h = r.string_map(m, "", "headers", 20, 64, 2048);
                    for k in h.keys() {
                        let lower = k.to_ascii_lowercase();
                        if [
                            "content-type",
                            "content-length",
                            "host",
                            "idempotency-key",
                            "authorization",
                        ]
                        .contains(&lower.as_str())
                        {
                            r.fail(
                                format!("headers.{k}"),
                                "is set by Insights (use auth for Authorization)",
                            );
                        }
                    }
                    h.into_iter().map(|(k, v)| (k, Secret(v))).collect()
                } else {
                    kept_headers.cloned().unwrap_or_default()
                };
                let auth = read_auth(&mut r, m, kept_auth);
                let body_template =
                    match r.string(m, "", "body_template", crate::template::MAX_TEMPLATE_BYTES) {
                        Some(s) => match Template::parse(&s, None) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                r.fail("body_template", e);
                                None
                            }
                        },
                        None => None,
                    };
                url.map(|url| EndpointKind::Http {
                    url,
                    method,
                    headers,
                    auth,
                    body_template,
                })
            }
            Some("email") => {
                r.known(
                    m,
                    "",
                    &allowed(&["host", "port", "tls", "username", "password", "from", "to"]),
                );
                let kept = match prev {
                    Some(EndpointKind::Email { password, .. }) => password.as_ref(),
                    _ => None,
                };
                let host = r.required_string(m, "", "host", 255);
                let tls = match m.get("tls").and_then(Value::as_str) {
                    None | Some("starttls") => TlsMode::Starttls,
                    Some("tls") => TlsMode::Tls,
                    Some("none") => TlsMode::None,
                    Some(_) => {
                        r.fail("tls", "must be none, starttls or tls");
                        TlsMode::Starttls
                    }
                };
                let port = match m.get("port") {
                    None | Some(Value::Null) => Some(match tls {
                        TlsMode::Tls => 465,
                        _ => 587,
                    }),
                    Some(p) => match p.as_u64() {
                        Some(p @ 1..=65_535) => Some(p as u16),
                        _ => {
                            r.fail("port", "must be a port number, 1 to 65535");
                            None
                        }
                    },
                };
                let username = r.string(m, "", "username", 255);
                let password = secret(&mut r, "password", kept);
                if password.is_some() && username.is_none() {
                    r.fail("username", "is required with a password");
                }
                let from = r.required_string(m, "", "from", 255);
                if let Some(f) = &from
                    && f.parse::<lettre::message::Mailbox>().is_err()
                {
                    r.fail("from", "must be an email address, e.g. alerts@example.com");
                }
                let to = r.strings(m, "", "to", 20, 255).unwrap_or_default();
                if to.is_empty() {
                    r.fail("to", "is required: one or more email addresses");
                }
                for (i, t) in to.iter().enumerate() {
                    if t.parse::<lettre::message::Mailbox>().is_err() {
                        r.fail(format!("to[{i}]"), "must be an email address");
                    }
                }
                match (host, port, from) {
                    (Some(host), Some(port), Some(from)) => Some(EndpointKind::Email {
                        host,
                        port,
                        tls,
                        username,
                        password,
                        from,
                        to,
                    }),
                    _ => None,
                }
            }
            Some("alertmanager") => {
                r.known(m, "", &allowed(&["url"]));
                let url = r.required_string(m, "", "url", 2048);
                if let Some(u) = &url {
                    check_url(&mut r, "url", u);
                }
                url.map(|url| EndpointKind::Alertmanager {
                    url: url.trim_end_matches('/').to_string(),
                })
            }
            Some(_) => {
                r.fail(
                    "kind",
                    "must be one of slack, pagerduty, http, email, alertmanager",
                );
                None
            }
            None => None,
        };
        match (name, endpoint_kind) {
            (Some(name), Some(kind)) if errors.is_empty() => Ok(Endpoint {
                id,
                name,
                kind,
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

pub(crate) fn kind_name(k: &EndpointKind) -> &'static str {
    match k {
        EndpointKind::Slack { .. } => "slack",
        EndpointKind::PagerDuty { .. } => "pagerduty",
        EndpointKind::Http { .. } => "http",
        EndpointKind::Email { .. } => "email",
        EndpointKind::Alertmanager { .. } => "alertmanager",
    }
}

fn read_auth(r: &mut Reader<'_>, m: &Map<String, Value>, kept: Option<&HttpAuth>) -> HttpAuth {
    let Some(a) = m.get("auth") else {
        return kept.cloned().unwrap_or(HttpAuth::None);
    };
    let Some(a) = r.object(a, "auth") else {
        return HttpAuth::None;
    };
    r.known(
        a,
        "auth",
        &[
            "type",
            "username",
            "password",
            "token",
            "password_set",
            "token_set",
        ],
    );
    match a.get("type").and_then(Value::as_str) {
        None | Some("none") => HttpAuth::None,
        Some("basic") => {
            let username = r.required_string(a, "auth", "username", 255);
            let password = r
                .string(a, "auth", "password", 2048)
                .map(Secret)
                .or(match kept {
                    Some(HttpAuth::Basic { password, .. }) => Some(password.clone()),
                    _ => None,
                });
            match (username, password) {
                (Some(username), Some(password)) => HttpAuth::Basic { username, password },
                (_, None) => {
                    r.fail("auth.password", "is required for basic auth");
                    HttpAuth::None
                }
                _ => HttpAuth::None,
            }
        }
        Some("bearer") => {
            let token = r
                .string(a, "auth", "token", 2048)
                .map(Secret)
                .or(match kept {
                    Some(HttpAuth::Bearer { token }) => Some(token.clone()),
                    _ => None,
                });
            match token {
                Some(token) => HttpAuth::Bearer { token },
                None => {
                    r.fail("auth.token", "is required for bearer auth");
                    HttpAuth::None
                }
            }
        }
        Some(_) => {
            r.fail(join("auth", "type"), "must be none, basic or bearer");
            HttpAuth::None
        }
    }
}

fn check_url(r: &mut Reader<'_>, field: &str, url: &str) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        // The URL may be a secret: the message never repeats it.
        _ => r.fail(field, "must be an http:// or https:// URL"),
    }
}

/// The host of a URL, which is shown where the URL itself is a secret.
pub(crate) fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> (tempfile::TempDir, SecretBox) {
        let d = tempfile::tempdir().unwrap();
        let s = SecretBox::load_or_create(d.path()).unwrap();
        (d, s)
    }

    fn make(v: Value) -> Result<Endpoint, AlertError> {
        Endpoint::from_document(&v, None, "e1".into(), "t".into(), "t".into())
    }

    #[test]
    fn secrets_are_never_in_the_view_and_survive_storage() {
        let (_d, sb) = secrets();
        for body in [
            json!({"name": "s", "kind": "slack", "url": "https://hooks.slack.com/services/T0/B0/SECRETSLACK", "channel": "#ml"}),
            json!({"name": "p", "kind": "pagerduty", "routing_key": "SECRETROUTINGKEY"}),
            json!({"name": "h", "kind": "http", "url": "https://example.com/hook?token=SECRETURL", "headers": {"X-Api-Key": "SECRETHEADER"}, "auth": {"type": "bearer", "token": "SECRETTOKEN"}}),
            json!({"name": "m", "kind": "email", "host": "127.0.0.1", "port": 2525, "tls": "none", "username": "u", "password": "SECRETPASSWORD", "from": "a@example.com", "to": ["b@example.com"]}),
        ] {
            let e = make(body).unwrap();
            let view = e.view().to_string();
            let stored = e.stored(&sb).to_string();
            for text in [&view, &stored] {
                assert!(!text.contains("SECRET"), "{text}");
            }
            let back = Endpoint::from_stored(&e.stored(&sb), &sb).unwrap();
            assert_eq!(back.kind, e.kind);
        }
    }

    #[test]
    fn an_update_without_the_secret_keeps_it() {
        let first = make(json!({"name": "p", "kind": "pagerduty", "routing_key": "K1"})).unwrap();
        let second = Endpoint::from_document(
            &json!({"name": "p2", "kind": "pagerduty"}),
            Some(&first),
            "e1".into(),
            "t".into(),
            "t".into(),
        )
        .unwrap();
        assert_eq!(second.kind, first.kind);
        let e = Endpoint::from_document(
            &json!({"name": "p2", "kind": "slack", "url": "https://x.example"}),
            Some(&first),
            "e1".into(),
            "t".into(),
            "t".into(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("kind"), "{e}");
    }

    #[test]
    fn errors_name_fields_without_repeating_secrets() {
        let e = make(json!({"name": "h", "kind": "http", "url": "ftp://SECRET", "method": "GET", "headers": {"Authorization": "x"}})).unwrap_err();
        let text = e.to_string();
        assert!(!text.contains("SECRET"), "{text}");
        for f in ["url", "method", "headers.Authorization"] {
            assert!(text.contains(f), "{f} in {text}");
        }
        let e = make(json!({"name": "m", "kind": "email", "host": "h", "from": "nope", "to": []}))
            .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("from") && text.contains("to"), "{text}");
    }
}
