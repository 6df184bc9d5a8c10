//! The frame every signed-in page shares: the [`Page`] extractor (signed in, or sent to sign
//! in and back), the navigation, and the HTML response.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

use crate::AppState;
use crate::auth::sessions::SignedIn;

/// A page request from a signed-in administrator; anyone else is sent to sign in, and back
/// here afterwards.
pub(super) struct Page(pub(super) SignedIn);

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
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Nav {
    Insights,
    Algorithms,
    Dashboards,
    Alerts,
    ApiKeys,
}

/// The frame of every signed-in page.
pub(super) fn layout(title: &str, nav: Nav, signed_in: &SignedIn, main: Markup) -> Markup {
    layout_with(title, nav, signed_in, html! {}, main)
}

/// [`layout`] with more in the head: a page's own stylesheets and scripts (from this origin,
/// loaded after `panel.js`).
pub(super) fn layout_with(
    title: &str,
    nav: Nav,
    signed_in: &SignedIn,
    head: Markup,
    main: Markup,
) -> Markup {
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
                (head)
            }
            body {
                header.top {
                    span.brand { "Insights" }
                    nav aria-label="Admin pages" {
                        (link(Nav::Insights, "/admin/insights", "Insights"))
                        (link(Nav::Algorithms, "/admin/algorithms", "Algorithms"))
                        (link(Nav::Dashboards, "/admin/dashboards", "Dashboards"))
                        (link(Nav::Alerts, "/admin/alerts", "Alerts"))
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

pub(super) fn html_page(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        markup.into_string(),
    )
        .into_response()
}
