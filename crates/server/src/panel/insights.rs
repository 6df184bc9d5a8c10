//! `/admin/insights`: the Kafka connection, its state in words, what was delivered, is waiting
//! or was dropped, and the connection form in a modal.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use crate::AppState;
use crate::kafka_status_words::status_in_words;

use super::layout::{Nav, Page, html_page, layout};

pub(super) async fn insights_page(
    State(state): State<AppState>,
    Page(signed_in): Page,
) -> Response {
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
