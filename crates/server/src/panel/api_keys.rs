//! `/admin/api-keys`: create (the key is shown once), list, revoke.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::AppState;

use super::layout::{Nav, Page, html_page, layout};

pub(super) async fn api_keys_page(
    State(state): State<AppState>,
    Page(signed_in): Page,
) -> Response {
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
