//! `/admin/sign-in` and `/admin/sign-out`: the form, the admin token checked (wrong ones
//! counted per client, see `auth::sessions`), the session cookie set and cleared.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, html};
use serde::Deserialize;

use super::layout::html_page;
use crate::AppState;
use crate::auth::sessions::{
    Client, SESSION_COOKIE, SIGN_IN_COOKIE, add_cookie, constant_time_eq, cookie, set_cookie,
};

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

#[derive(Deserialize, Default)]
pub(super) struct SignInQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

pub(super) async fn sign_in_page(
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
pub(super) struct SignInForm {
    token: String,
    csrf: String,
    next: Option<String>,
}

pub(super) async fn sign_in(
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
pub(super) struct SignOutForm {
    csrf: String,
}

pub(super) async fn sign_out(
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
