//! `/admin/insights`: the Kafka connection, its state in words, what was delivered, is waiting
//! or was dropped, and the connection form in a modal; the same for Datadog delivery (its card,
//! counts and form with **Test**), whose API key is never in the page (only whether one is set).

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
    let dd_status = state.datadog.status();
    let dd_words = crate::datadog::status_in_words(&dd_status);
    let (dd, dd_error) = match state.datadog_settings.load() {
        Ok(s) => (s.map(|s| s.view()), None),
        Err(e) => (None, Some(e)),
    };
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
        (datadog_card(&dd_status, &dd_words, dd.as_ref(), dd_error.as_ref()))
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

/// The Datadog card: state in words, counts, the settings (never the key), and the form with
/// Test in a modal.
fn datadog_card(
    status: &insights_delivery::DatadogStatus,
    words: &crate::datadog::StatusWords,
    settings: Option<&insights_delivery::datadog::DatadogView>,
    stored_error: Option<&crate::datadog::StoredDatadogError>,
) -> maud::Markup {
    let field = |name: &str| html! { p.field-error id={"error-" (name)} hidden {} };
    let site = settings.map_or("datadoghq.com", |s| s.site.as_str());
    html! {
        section.card aria-labelledby="datadog-heading" {
            h2 id="datadog-heading" { "Datadog" }
            @if let Some(e) = stored_error {
                p.form-error role="alert" {
                    "The stored Datadog settings cannot be read (" (e) "). Save them again to replace them."
                }
            }
            p.state id="datadog-state" data-state=(status.state) role="status" aria-live="polite" {
                span.badge id="datadog-state-label" { (words.label) }
                " "
                span id="datadog-state-sentence" { (words.sentence) }
            }
            details id="datadog-error-detail" hidden[status.last_error.is_none()] {
                summary { "Technical detail" }
                pre id="datadog-error" { (status.last_error.as_deref().unwrap_or("")) }
            }
            @if let Some(s) = settings {
                dl.summary id="datadog-summary" {
                    dt { "Site" } dd { code { (s.site) } }
                    @if let Some(u) = &s.url { dt { "URL" } dd { code { (u) } } }
                    dt { "API key" } dd { @if s.api_key_set { "set" } @else { "not set" } }
                    dt { "Metric prefix" } dd { code { (s.metric_prefix) } }
                    dt { "Tags" } dd { @if s.tags.is_empty() { "none" } @else { code { (s.tags.join(", ")) } } }
                    dt { "request_id and session_id tags" } dd { @if s.legacy_id_tags { "on (a custom metric per execution)" } @else { "off" } }
                }
            }
            dl.counts {
                div { dt { "Delivered" } dd id="datadog-delivered" { (status.delivered) } }
                div { dt { "Waiting" } dd id="datadog-waiting" { (status.waiting) } }
                div { dt { "Dropped" } dd id="datadog-dropped" { (status.dropped) } }
                div { dt { "Delivery window" } dd id="datadog-window" { (window_in_words(status.window_seconds)) } }
            }
            p.hint id="datadog-window-note" {
                "Each metric becomes a gauge at the payload's time. Datadog refuses points older than an hour, "
                "so the effective window is the shorter of the delivery window and one hour: "
                "a payload not accepted by then is dropped and counted."
            }
            div.actions {
                button type="button" id="open-datadog" aria-haspopup="dialog" {
                    @if settings.is_some() { "Edit Datadog" } @else { "Send to Datadog" }
                }
                @if settings.is_some() {
                    button.danger type="button" id="remove-datadog" { "Stop sending to Datadog" }
                }
            }
        }
        dialog id="datadog-dialog" aria-labelledby="datadog-title" {
            form id="datadog-form" method="dialog" novalidate data-key-set=(settings.is_some_and(|s| s.api_key_set)) {
                h2 id="datadog-title" { @if settings.is_some() { "Edit Datadog" } @else { "Send to Datadog" } }
                label for="dd-site" { "Datadog site" }
                select id="dd-site" name="site" aria-describedby="error-site" {
                    @for s in insights_delivery::datadog::SITES {
                        option value=(s) selected[s == site] { (s) }
                    }
                }
                (field("site"))
                label for="dd-api-key" { "API key" }
                input id="dd-api-key" name="api_key" type="password" autocomplete="off"
                    placeholder=[settings.filter(|s| s.api_key_set).map(|_| "A key is set; leave empty to keep it")]
                    aria-describedby="dd-key-hint error-api_key";
                p.hint id="dd-key-hint" { "Never shown again once saved. Kept for the same site and URL when left empty." }
                (field("api_key"))
                label for="dd-prefix" { "Metric prefix" }
                input id="dd-prefix" name="metric_prefix" autocomplete="off"
                    value=(settings.map_or("algorithmia.", |s| s.metric_prefix.as_str()))
                    aria-describedby="error-metric_prefix";
                (field("metric_prefix"))
                label for="dd-tags" { "Tags (comma-separated)" }
                input id="dd-tags" name="tags" autocomplete="off" placeholder="env:prod, team:ml"
                    value=(settings.map_or(String::new(), |s| s.tags.join(", ")))
                    aria-describedby="error-tags";
                (field("tags"))
                label.choice {
                    input id="dd-legacy" name="legacy_id_tags" type="checkbox" checked[settings.is_some_and(|s| s.legacy_id_tags)]
                        aria-describedby="dd-legacy-hint";
                    " Also tag request_id and session_id"
                }
                p.hint id="dd-legacy-hint" { "As the original integration did. Costly: every execution becomes a new custom metric, which Datadog bills." }
                label for="dd-url" { "URL (optional: a proxy)" }
                input id="dd-url" name="url" autocomplete="off" placeholder="https://api.<site>"
                    value=(settings.and_then(|s| s.url.as_deref()).unwrap_or(""))
                    aria-describedby="error-url";
                (field("url"))
                p.form-error id="datadog-form-error" role="alert" hidden {}
                div id="datadog-verdict" role="status" aria-live="polite" {}
                div.actions {
                    button type="button" id="test-datadog" { "Test" }
                    button type="submit" id="save-datadog" { "Save" }
                    button type="button" id="cancel-datadog" value="cancel" { "Cancel" }
                }
            }
        }
    }
}

fn window_in_words(seconds: u64) -> String {
    if seconds >= 60 && seconds.is_multiple_of(60) {
        let m = seconds / 60;
        format!("{m} minute{}", if m == 1 { "" } else { "s" })
    } else {
        format!("{seconds} seconds")
    }
}
