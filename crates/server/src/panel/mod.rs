//! The admin panel under `/admin`: server-rendered pages (maud escapes everything it writes)
//! with one small script, `assets/panel.js`, that calls the admin API (`/v1/admin/...`) with the
//! session cookie and the page's CSRF token. The pages never hold a secret: not the admin token,
//! not the Kafka password (only whether one is set); an API key is shown once, in the answer
//! that created it.
//!
//! - `/admin/sign-in`, `/admin/sign-out`: see `session.rs` for cookies, CSRF and rate limits.
//! - `/admin/insights`: the Kafka connection, its state in words, delivery counts; the
//!   connection form in a modal.
//! - `/admin/algorithms`: versions with their Insights switch and counts; a version's latest
//!   payloads as a table.
//! - `/admin/api-keys`: create (shown once), list, revoke.

use axum::Form;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use insights_store::PayloadQuery;
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use crate::AppState;
use crate::auth::sessions::{
    Client, SESSION_COOKIE, SIGN_IN_COOKIE, SignedIn, add_cookie, constant_time_eq, cookie,
    set_cookie,
};
use crate::kafka_status_words::status_in_words;

/// Payloads shown on a version's page.
const PAYLOADS_SHOWN: usize = 50;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/insights") }))
        .route("/admin/", get(|| async { Redirect::to("/admin/insights") }))
        .route("/admin/sign-in", get(sign_in_page).post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/insights", get(insights_page))
        .route("/admin/algorithms", get(algorithms_page))
        .route(
            "/admin/algorithms/{owner}/{name}/versions/{version}",
            get(version_page),
        )
        .route("/admin/api-keys", get(api_keys_page))
        .route("/admin/assets/panel.css", get(css))
        .route("/admin/assets/panel.js", get(js))
        .layer(axum::middleware::map_response(security_headers))
}

/// No inline script or style, nothing from another origin, no framing, no referrer.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/panel.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/panel.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// A page request from a signed-in administrator; anyone else is sent to sign in, and back
/// here afterwards.
struct Page(SignedIn);

impl FromRequestParts<AppState> for Page {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match crate::auth::sessions::signed_in(state, &parts.headers) {
            Some((_, s)) => Ok(Page(s)),
            None => {
                let next = parts.uri.path_and_query().map_or("/admin", |p| p.as_str());
                let to = format!(
                    "/admin/sign-in?next={}",
                    form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&to).into_response())
            }
        }
    }
}

/// Where to go after signing in: only a path of this panel, never another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        // Printable ASCII only: anything else could not go in a Location header.
        Some(n)
            if n.starts_with("/admin/")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/admin/insights",
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Nav {
    Insights,
    Algorithms,
    ApiKeys,
}

/// The frame of every signed-in page.
fn layout(title: &str, nav: Nav, signed_in: &SignedIn, main: Markup) -> Markup {
    let link = |to: Nav, href: &str, text: &str| {
        html! {
            a href=(href) aria-current=[(to == nav).then_some("page")] { (text) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="csrf-token" content=(signed_in.csrf);
                title { (title) " · Insights admin" }
                link rel="stylesheet" href="/admin/assets/panel.css";
                script src="/admin/assets/panel.js" defer {}
            }
            body {
                header.top {
                    span.brand { "Insights" }
                    nav aria-label="Admin pages" {
                        (link(Nav::Insights, "/admin/insights", "Insights"))
                        (link(Nav::Algorithms, "/admin/algorithms", "Algorithms"))
                        (link(Nav::ApiKeys, "/admin/api-keys", "API keys"))
                    }
                    form.sign-out method="post" action="/admin/sign-out" {
                        input type="hidden" name="csrf" value=(signed_in.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
                main id="main" { (main) }
            }
        }
    }
}

fn html_page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}

// ---- sign in / out ----

#[derive(Deserialize, Default)]
struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

async fn sign_in_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(q): Query<SignInQuery>,
) -> Response {
    let notice = q.signed_out.is_some().then_some("You are signed out.");
    let client = state.sessions.client_of(&extensions, &headers);
    sign_in_form(
        &headers,
        client,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        notice,
        None,
    )
}

/// The sign-in form, with a fresh sign-in CSRF token in a cookie and a hidden field.
fn sign_in_form(
    headers: &HeaderMap,
    client: Client,
    status: StatusCode,
    next: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    // One token per browser, kept while it is valid: two sign-in tabs both work.
    let csrf = cookie(headers, SIGN_IN_COOKIE)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(crate::auth::sessions::random_token, str::to_string);
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Insights admin" }
                link rel="stylesheet" href="/admin/assets/panel.css";
            }
            body.sign-in {
                main id="main" {
                    h1 { "Insights admin" }
                    @if let Some(n) = notice { p.notice role="status" { (n) } }
                    form method="post" action="/admin/sign-in" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="next" value=(next);
                        label for="token" { "Admin token" }
                        input id="token" name="token" type="password" autocomplete="current-password"
                            required autofocus
                            aria-describedby=(if error.is_some() { "token-hint token-error" } else { "token-hint" })
                            aria-invalid=[error.map(|_| "true")];
                        p.hint id="token-hint" {
                            "The token is in " code { "<data-dir>/admin-token" }
                            " (or " code { "INSIGHTS_ADMIN_TOKEN" } ")."
                        }
                        @if let Some(e) = error { p.field-error id="token-error" role="alert" { (e) } }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        }
    };
    let mut response = html_page(status, markup);
    add_cookie(
        &mut response,
        set_cookie(client, SIGN_IN_COOKIE, &csrf, None),
    );
    response
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<SignInForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_string();
    let client = state.sessions.client_of(&extensions, &headers);
    let ip = client.ip;
    let form_ok = cookie(&headers, SIGN_IN_COOKIE)
        .is_some_and(|c| constant_time_eq(c.as_bytes(), form.csrf.as_bytes()));
    if !form_ok {
        return sign_in_form(
            &headers,
            client,
            StatusCode::FORBIDDEN,
            &next,
            None,
            Some("The form had expired. Please sign in again."),
        );
    }
    // The right token always signs in; wrong ones are counted per client, and past the limit
    // answered 429 without a log line each (see `Sessions::failed`).
    if !state.admin.matches(form.token.trim()) {
        if let Some(wait) = state.sessions.failed(ip) {
            metrics::counter!("insights_admin_sign_ins_total", "outcome" => "rate_limited")
                .increment(1);
            let mut r = sign_in_form(
                &headers,
                client,
                StatusCode::TOO_MANY_REQUESTS,
                &next,
                None,
                Some(&format!(
                    "That is not the admin token, and too many wrong ones came from this address. Wrong tokens are refused like this for {} seconds; the right one still works.",
                    wait.as_secs().max(1)
                )),
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(wait.as_secs().max(1)),
            );
            return r;
        }
        metrics::counter!("insights_admin_sign_ins_total", "outcome" => "wrong_token").increment(1);
        tracing::warn!(%ip, "a sign-in to the admin panel failed: wrong token");
        return sign_in_form(
            &headers,
            client,
            StatusCode::UNAUTHORIZED,
            &next,
            None,
            Some("That is not the admin token."),
        );
    }
    state.sessions.succeeded(ip);
    metrics::counter!("insights_admin_sign_ins_total", "outcome" => "ok").increment(1);
    let (token, _) = state.sessions.create();
    let mut r = Redirect::to(&next).into_response();
    add_cookie(&mut r, set_cookie(client, SESSION_COOKIE, &token, None));
    add_cookie(
        &mut r,
        set_cookie(client, SIGN_IN_COOKIE, "", Some(std::time::Duration::ZERO)),
    );
    r
}

#[derive(Deserialize)]
struct SignOutForm {
    csrf: String,
}

async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    extensions: Extensions,
    Form(form): Form<SignOutForm>,
) -> Response {
    let client = state.sessions.client_of(&extensions, &headers);
    if let Some((token, s)) = crate::auth::sessions::signed_in(&state, &headers) {
        if !constant_time_eq(s.csrf.as_bytes(), form.csrf.as_bytes()) {
            return (
                StatusCode::FORBIDDEN,
                "The form had expired; reload the page.",
            )
                .into_response();
        }
        state.sessions.remove(&token);
    }
    let mut r = Redirect::to("/admin/sign-in?signed_out=1").into_response();
    add_cookie(
        &mut r,
        set_cookie(client, SESSION_COOKIE, "", Some(std::time::Duration::ZERO)),
    );
    r
}

// ---- Insights ----

async fn insights_page(State(state): State<AppState>, Page(signed_in): Page) -> Response {
    let status = state.kafka.status();
    let (connection, stored_error) = match state.connection.load() {
        Ok(c) => (c.map(|s| s.view()), None),
        Err(e) => (None, Some(e)),
    };
    let words = status_in_words(&status);
    let is_sasl = connection
        .as_ref()
        .is_some_and(|c| c.connection_type == "sasl_scram_tls");
    let field = |name: &str| html! { p.field-error id={"error-" (name)} hidden {} };
    let main = html! {
        h1 { "Insights" }
        p.form-error id="page-error" role="alert" hidden {}
        @if let Some(e) = &stored_error {
            p.form-error role="alert" {
                "The stored Kafka connection cannot be read (" (e) "). Connect again to replace it."
            }
        }
        p.notice id="connection-warnings" role="status" hidden {}
        p.lead {
            "Every execution of a version with Insights on sends one payload to Kafka. "
            "Payloads wait while the connection is down, for up to the delivery window, then are dropped and counted."
        }
        section.card aria-labelledby="connection-heading" {
            h2 id="connection-heading" { "Kafka connection" }
            p.state id="kafka-state" data-state=(status.state) role="status" aria-live="polite" {
                span.badge id="kafka-state-label" { (words.label) }
                " "
                span id="kafka-state-sentence" { (words.sentence) }
            }
            details id="kafka-error-detail" hidden[status.last_error.is_none()] {
                summary { "Technical detail" }
                pre id="kafka-error" { (status.last_error.as_deref().unwrap_or("")) }
            }
            @if let Some(c) = &connection {
                dl.summary id="connection-summary" {
                    dt { "Topic" } dd { code { (c.topic) } }
                    dt { "Brokers" } dd { code { (c.brokers) } }
                    dt { "Connection type" }
                    dd { @if is_sasl { "SASL/SCRAM over TLS" } @else { "Unencrypted/plaintext" } }
                    @if let Some(m) = c.sasl_mechanism { dt { "SASL mechanism" } dd { (m) } }
                    @if let Some(u) = &c.username { dt { "Username" } dd { (u) } }
                    @if is_sasl { dt { "Password" } dd { @if c.password_set { "set" } @else { "not set" } } }
                }
            }
            div.actions {
                button type="button" id="open-connection" aria-haspopup="dialog" {
                    @if connection.is_some() { "Edit Connection" } @else { "Connect to Kafka" }
                }
                @if connection.is_some() {
                    button.danger type="button" id="disconnect" { "Disconnect" }
                }
            }
        }
        section.card aria-labelledby="delivery-heading" {
            h2 id="delivery-heading" { "Delivery" }
            dl.counts {
                div { dt { "Delivered" } dd id="delivered" { (status.delivered) } }
                div { dt { "Waiting" } dd id="waiting" { (status.waiting) } }
                div { dt { "Dropped" } dd id="dropped" { (status.dropped) } }
                div { dt { "Delivery window" } dd id="window" { (window_in_words(status.window_seconds)) } }
            }
            p.hint { "Counts of delivered and dropped payloads start again when the server restarts; waiting payloads are kept on disk." }
        }
        dialog id="connection-dialog" aria-labelledby="connection-title" {
            form id="connection-form" method="dialog" novalidate
                data-password-set=(connection.as_ref().is_some_and(|c| c.password_set)) {
                h2 id="connection-title" { @if connection.is_some() { "Edit Connection" } @else { "Connect to Kafka" } }
                label for="topic" { "Topic name" }
                input id="topic" name="topic" required autocomplete="off"
                    value=(connection.as_ref().map_or("", |c| c.topic.as_str()))
                    aria-describedby="error-topic";
                (field("topic"))
                label for="brokers" { "Kafka broker URL(s)" }
                input id="brokers" name="brokers" required autocomplete="off"
                    placeholder="host1:port1,host2:port2"
                    value=(connection.as_ref().map_or("", |c| c.brokers.as_str()))
                    aria-describedby="brokers-hint error-brokers";
                p.hint id="brokers-hint" { "As " code { "host1:port1,host2:port2" } ". More than one broker is recommended, so that delivery goes on when one is down." }
                (field("brokers"))
                fieldset {
                    legend { "Connection type" }
                    label.choice {
                        input type="radio" name="connection_type" value="sasl_scram_tls" checked[is_sasl]
                            aria-describedby="error-connection_type";
                        " SASL/SCRAM over TLS"
                    }
                    label.choice {
                        input type="radio" name="connection_type" value="plaintext" checked[!is_sasl]
                            aria-describedby="error-connection_type";
                        " Unencrypted/plaintext"
                    }
                    (field("connection_type"))
                }
                fieldset id="sasl-fields" hidden[!is_sasl] {
                    legend { "SASL/SCRAM and TLS" }
                    label for="sasl_mechanism" { "SASL mechanism" }
                    select id="sasl_mechanism" name="sasl_mechanism" aria-describedby="error-sasl_mechanism" {
                        @for m in ["SCRAM-SHA-512", "SCRAM-SHA-256"] {
                            option value=(m) selected[connection.as_ref().and_then(|c| c.sasl_mechanism) == Some(m)] { (m) }
                        }
                    }
                    (field("sasl_mechanism"))
                    label for="username" { "Broker username" }
                    input id="username" name="username" autocomplete="off"
                        value=(connection.as_ref().and_then(|c| c.username.as_deref()).unwrap_or(""))
                        aria-describedby="error-username";
                    (field("username"))
                    label for="password" { "Broker password" }
                    input id="password" name="password" type="password" autocomplete="new-password"
                        placeholder=[connection.as_ref().filter(|c| c.password_set).map(|_| "A password is set; leave empty to keep it")]
                        aria-describedby="password-hint error-password";
                    p.hint id="password-hint" {
                        @if connection.as_ref().is_some_and(|c| c.password_set) {
                            "A password is set. It stays unchanged unless you type a new one; "
                            "for other brokers or another username, type it again."
                        } @else {
                            "Never shown again once saved."
                        }
                    }
                    (field("password"))
                    label for="ca_certificate" { "CA certificate (PEM)" }
                    textarea id="ca_certificate" name="ca_certificate" rows="5" spellcheck="false"
                        placeholder="-----BEGIN CERTIFICATE-----"
                        aria-describedby="error-ca_certificate" {
                        (connection.as_ref().and_then(|c| c.ca_certificate.as_deref()).unwrap_or(""))
                    }
                    label for="ca_file" { "…or upload the certificate file" }
                    input id="ca_file" type="file" accept=".pem,.crt,.cer,text/plain";
                    (field("ca_certificate"))
                }
                p.form-error id="form-error" role="alert" hidden {}
                div id="verdict" role="status" aria-live="polite" {}
                div.actions {
                    button type="submit" id="connect" { "Connect" }
                    button type="button" id="save-anyway" hidden { "Save anyway" }
                    button type="button" id="cancel-connection" value="cancel" { "Cancel" }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout("Insights", Nav::Insights, &signed_in, main),
    )
}

fn window_in_words(seconds: u64) -> String {
    if seconds >= 60 && seconds.is_multiple_of(60) {
        let m = seconds / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{seconds} seconds")
    }
}

// ---- Algorithms ----

async fn algorithms_page(State(state): State<AppState>, Page(signed_in): Page) -> Response {
    let algorithms = state.runtime.catalog().algorithms();
    let counts = state.runtime.call_counts();
    let main = html! {
        h1 { "Algorithms" }
        p.lead { "Insights is switched on or off per version. Calls and payloads are counted since the server started." }
        @if algorithms.is_empty() {
            p { "No algorithm is registered yet. Register one with " code { "POST /v1/algorithms/{owner}" } " or in the config file." }
        }
        @for a in &algorithms {
            section.card {
                h2 { (a.owner) "/" (a.name) }
                @if a.versions.is_empty() {
                    p { "No version is published yet." }
                } @else {
                    div.table-wrap {
                        table {
                            thead { tr { th scope="col" { "Version" } th scope="col" { "Published" } th scope="col" { "Insights" } th scope="col" { "Calls" } th scope="col" { "Payloads" } th scope="col" { span.visually-hidden { "Latest payloads" } } } }
                            tbody {
                                @for v in a.versions.iter().rev() {
                                    @let version = &v.version_info.semantic_version;
                                    @let c = counts.get(&(a.owner.clone(), a.name.clone(), version.clone())).copied().unwrap_or_default();
                                    @let id = format!("insights-{}-{}-{}", a.owner, a.name, version);
                                    tr {
                                        th scope="row" { (version) }
                                        td { (v.created_at) }
                                        td {
                                            label.switch for=(id) {
                                                input type="checkbox" role="switch" id=(id)
                                                    data-algorithm=(format!("{}/{}", a.owner, a.name)) data-version=(version)
                                                    checked[v.settings.insights_enabled];
                                                span.visually-hidden { "Insights for " (a.owner) "/" (a.name) " " (version) }
                                            }
                                        }
                                        td.num { (c.calls) }
                                        td.num { (c.payloads) }
                                        td { a href=(format!("/admin/algorithms/{}/{}/versions/{}", a.owner, a.name, version)) { "Latest payloads" } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.form-error id="page-error" role="alert" hidden {}
    };
    html_page(
        StatusCode::OK,
        layout("Algorithms", Nav::Algorithms, &signed_in, main),
    )
}

/// Keys every payload has; the table shows them first (time, request, duration) or not at all
/// (the rest repeat the page's title).
const PAYLOAD_IDENTITY_KEYS: [&str; 4] = [
    "algorithm_name",
    "algorithm_owner",
    "algorithm_version",
    "session_id",
];

async fn version_page(
    State(state): State<AppState>,
    Path((owner, name, version)): Path<(String, String, String)>,
    Page(signed_in): Page,
) -> Response {
    let q = PayloadQuery {
        owner: Some(owner.clone()),
        name: Some(name.clone()),
        version: Some(version.clone()),
        limit: PAYLOADS_SHOWN,
    };
    let store = state.store.clone();
    let rows = match tokio::task::spawn_blocking(move || store.payloads(&q)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(e)) => return crate::ApiError::from(e).into_response(),
        Err(e) => return crate::ApiError::internal(e).into_response(),
    };
    let payloads: Vec<serde_json::Map<String, serde_json::Value>> = rows
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    // Columns: time, request, duration, then every metric in first-seen order.
    let mut columns: Vec<String> = ["time", "request_id", "duration_milliseconds"]
        .map(String::from)
        .to_vec();
    for p in &payloads {
        for k in p.keys() {
            if !PAYLOAD_IDENTITY_KEYS.contains(&k.as_str()) && !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    let cell = |v: Option<&serde_json::Value>| match v {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let main = html! {
        p { a href="/admin/algorithms" { "← Algorithms" } }
        h1 { (owner) "/" (name) " " (version) }
        p.lead { "The latest " (PAYLOADS_SHOWN) " payloads stored for this version, newest first, as they were sent." }
        @if payloads.is_empty() {
            p id="no-payloads" { "No payload is stored for this version yet." }
        } @else {
            div.table-wrap {
                table id="payloads" {
                    thead { tr { @for c in &columns { th scope="col" { (c) } } } }
                    tbody {
                        @for p in &payloads {
                            tr { @for c in &columns { td { (cell(p.get(c))) } } }
                        }
                    }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(
            &format!("{owner}/{name} {version}"),
            Nav::Algorithms,
            &signed_in,
            main,
        ),
    )
}

// ---- API keys ----

async fn api_keys_page(State(state): State<AppState>, Page(signed_in): Page) -> Response {
    let keys = match state.keys.list() {
        Ok(k) => k,
        Err(e) => return e.into_response(),
    };
    let main = html! {
        h1 { "API keys" }
        p.lead { "Clients call algorithms with " code { "Authorization: Simple <key>" } ". A key is shown once, when it is created." }
        section.card aria-labelledby="create-heading" {
            h2 id="create-heading" { "Create a key" }
            form id="create-key" novalidate {
                label for="key-name" { "Name" }
                input id="key-name" name="name" required maxlength="100" autocomplete="off"
                    aria-describedby="error-name";
                p.field-error id="error-name" hidden {}
                div.actions { button type="submit" { "Create key" } }
            }
            div.new-key id="new-key" role="status" aria-live="polite" {
                p id="new-key-notice" hidden { "Copy this key now; it will not be shown again." }
                code id="new-key-value" {}
            }
        }
        section.card aria-labelledby="keys-heading" {
            h2 id="keys-heading" { "Keys" }
            div.table-wrap {
                table id="keys" {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { span.visually-hidden { "Actions" } } } }
                    tbody {
                        @for k in &keys {
                            tr data-key-id=(k.id) {
                                th scope="row" { (k.name) }
                                td { (k.created_at) }
                                td { (k.last_used_at.as_deref().unwrap_or("never")) }
                                td { button.danger.revoke type="button" data-key-id=(k.id) data-key-name=(k.name)
                                    aria-label={"Revoke key " (k.name)} { "Revoke" } }
                            }
                        }
                    }
                }
            }
            @if keys.is_empty() { p id="no-keys" { "No key yet." } }
        }
        p.form-error id="page-error" role="alert" hidden {}
    };
    html_page(
        StatusCode::OK,
        layout("API keys", Nav::ApiKeys, &signed_in, main),
    )
}
