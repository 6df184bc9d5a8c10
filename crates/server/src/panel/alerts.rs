//! `/admin/alerts`: checks with the current level of each of their series, notification
//! endpoints (with a **Test** button), notification rules, and the history of statuses and
//! notifications. The page is a frame, as the dashboards pages are: `assets/alerts.js` reads
//! everything from the alerting API (`/v1/admin/checks`, `…/notification-endpoints`,
//! `…/notification-rules`, `…/statuses`, `…/notifications`), draws the check form's live
//! preview with uPlot over `POST /v1/admin/checks/preview`, and saves through the same API.
//!
//! The three forms are here, each in a dialog: a field for everything the API takes, each with
//! an error slot whose id is the API's field name with `-` for its punctuation
//! (`thresholds[1].min` → `error-check-thresholds-1-min`, falling back to the row's
//! `error-check-thresholds-1`), where the script puts the API's message about that field.
//! Secrets (webhook URLs, routing keys, tokens, passwords) are password inputs that start
//! empty; the page only ever says whether one is stored, and an empty one on edit keeps it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use insights_alerts::Level;
use insights_series::Function;
use maud::{Markup, html};

use crate::AppState;

use super::layout::{Nav, Page, html_page, layout_with};

fn head() -> Markup {
    html! {
        link rel="stylesheet" href="/admin/assets/vendor/uplot/uPlot.min.css";
        script src="/admin/assets/vendor/uplot/uPlot.iife.min.js" defer {}
        script src="/admin/assets/alerts.js" defer {}
    }
}

/// The error slot of a form's field (`check`, `query-metric` → `error-check-query-metric`).
fn slot(form: &str, field: &str) -> Markup {
    html! { p.field-error id={"error-" (form) "-" (field)} hidden {} }
}

/// Levels from the highest down, as a select's options.
fn level_options(with_ok: bool, selected: &str) -> Markup {
    html! {
        @for l in Level::ALL.iter().rev() {
            @if with_ok || *l != Level::Ok {
                option value=(l.as_str()) selected[l.as_str() == selected] { (l.as_str()) }
            }
        }
    }
}

/// A card listing one kind of thing (`checks`, `endpoints`, `rules`): its heading, a "New …"
/// button, a table that alerts.js fills (with an actions column), and the line shown when the
/// list is empty.
fn list_card(id: &str, title: &str, one: &str, columns: &[&str]) -> Markup {
    let heading = format!("{id}-heading");
    html! {
        section.card aria-labelledby=(heading) {
            div.card-head {
                h2 id=(heading) { (title) }
                button type="button" id=(format!("new-{one}")) aria-haspopup="dialog" { "New " (one) }
            }
            div.table-wrap {
                table id=(id) {
                    thead { tr {
                        @for c in columns { th scope="col" { (c) } }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {}
                }
            }
            p id=(format!("no-{id}")) hidden { "No " (one) " yet." }
        }
    }
}

pub(super) async fn alerts_page(State(state): State<AppState>, Page(signed_in): Page) -> Response {
    let algorithms = state.runtime.catalog().algorithms();
    let durations = ["10s", "30s", "1m", "5m", "10m", "15m", "1h", "6h", "1d"];
    let main = html! {
        h1 { "Alerts" }
        p.form-error id="page-error" role="alert" hidden {}
        div.form-error id="unreadable" role="alert" hidden {
            p { "Stored, but this server cannot read them back, so alerting runs without them. Save an endpoint again (Edit, with its secrets) or delete what you no longer need." }
            ul {}
        }
        p.lead {
            "Checks give each series (an algorithm's version) a level — "
            span.level data-level="crit" { "crit" } " " span.level data-level="warn" { "warn" } " "
            span.level data-level="info" { "info" } " " span.level data-level="ok" { "ok" }
            " — and rules send the changes to endpoints."
        }
        p.hint id="updated" role="status" aria-live="polite" {}

        (list_card("checks", "Checks", "check", &["Name", "What", "Series: level since"]))
        (list_card("endpoints", "Notification endpoints", "endpoint", &["Name", "Kind", "Where", "Test"]))
        (list_card("rules", "Notification rules", "rule", &["Name", "Endpoint", "Checks", "When", "Suppressed"]))

        section.card aria-labelledby="history-heading" {
            h2 id="history-heading" { "History" }
            form.controls id="history-filters" novalidate {
                div {
                    label for="history-check" { "Check" }
                    select id="history-check" { option value="" { "Every check" } }
                }
                div {
                    label for="history-level" { "Level changes to" }
                    select id="history-level" {
                        option value="" { "any level" }
                        (level_options(true, ""))
                    }
                }
            }
            h3 id="statuses-heading" { "Level changes" }
            div.table-wrap {
                table id="statuses" aria-labelledby="statuses-heading" {
                    thead { tr {
                        th scope="col" { "Time" } th scope="col" { "Check" } th scope="col" { "Series" }
                        th scope="col" { "Change" } th scope="col" { "Value" } th scope="col" { "Message" }
                    } }
                    tbody {}
                }
            }
            p id="no-statuses" hidden { "No level has changed yet." }
            h3 id="notifications-heading" { "Notifications" }
            div.table-wrap {
                table id="notifications" aria-labelledby="notifications-heading" {
                    thead { tr {
                        th scope="col" { "Created" } th scope="col" { "Check" } th scope="col" { "Series" }
                        th scope="col" { "Change" } th scope="col" { "Endpoint" } th scope="col" { "State" }
                        th scope="col" { "Attempts" } th scope="col" { "Last error" }
                    } }
                    tbody {}
                }
            }
            p id="no-notifications" hidden { "No notification yet." }
        }

        datalist id="durations" { @for d in durations { option value=(d) {} } }

        // ---- The check form ----
        dialog.wide id="check-dialog" aria-labelledby="check-dialog-title" {
            form id="check-form" method="dialog" novalidate {
                h2 id="check-dialog-title" { "New check" }
                div.editor {
                    div.editor-fields {
                        label for="check-name" { "Name" }
                        input id="check-name" name="name" required maxlength="200" autocomplete="off" aria-describedby="error-check-name";
                        (slot("check", "name"))
                        label.choice for="check-enabled" {
                            input id="check-enabled" type="checkbox" name="enabled" checked aria-describedby="error-check-enabled";
                            " On: runs on its schedule"
                        }
                        (slot("check", "enabled"))
                        fieldset id="check-kind" aria-describedby="error-check-kind" {
                            legend { "Kind" }
                            label.choice for="check-kind-threshold" {
                                input id="check-kind-threshold" type="radio" name="kind" value="threshold" checked;
                                " Threshold: a metric's value per window"
                            }
                            label.choice for="check-kind-deadman" {
                                input id="check-kind-deadman" type="radio" name="kind" value="deadman";
                                " Deadman: no payload for a while"
                            }
                            (slot("check", "kind"))
                        }
                        label for="check-query-algorithm" { "Algorithm" }
                        select id="check-query-algorithm" name="algorithm" aria-describedby="error-check-query-algorithm" {
                            option value="*" { "* (every algorithm with Insights on)" }
                            @for a in &algorithms {
                                @let path = format!("{}/{}", a.owner, a.name);
                                option value=(path) { (path) }
                            }
                        }
                        (slot("check", "query-algorithm"))
                        label for="check-query-versions" { "Versions" }
                        input id="check-query-versions" name="versions" autocomplete="off" placeholder="every version, each a series of its own"
                            aria-describedby="versions-hint error-check-query-versions";
                        p.hint id="versions-hint" { "Only these versions, separated by commas; empty for every version." }
                        (slot("check", "query-versions"))
                        div.threshold-only {
                            label for="check-query-metric" { "Metric" }
                            select id="check-query-metric" name="metric" aria-describedby="error-check-query-metric" {
                                option value="" { "Choose a metric" }
                            }
                            (slot("check", "query-metric"))
                            div.pair {
                                div {
                                    label for="check-query-fn" { "Function" }
                                    select id="check-query-fn" name="fn" aria-describedby="error-check-query-fn" {
                                        @for f in Function::ALL { option value=(f.as_str()) selected[f == Function::Mean] { (f.as_str()) } }
                                    }
                                    (slot("check", "query-fn"))
                                }
                                div {
                                    label for="check-query-window" { "Window" }
                                    input id="check-query-window" name="window" list="durations" value="1m" autocomplete="off"
                                        aria-describedby="error-check-query-window";
                                    (slot("check", "query-window"))
                                }
                            }
                        }
                        div.pair {
                            div {
                                label for="check-every" { "Every" }
                                input id="check-every" name="every" list="durations" value="1m" autocomplete="off" aria-describedby="every-hint error-check-every";
                                (slot("check", "every"))
                            }
                            div {
                                label for="check-offset" { "Offset" }
                                input id="check-offset" name="offset" list="durations" value="0s" autocomplete="off" aria-describedby="every-hint error-check-offset";
                                (slot("check", "offset"))
                            }
                        }
                        p.hint id="every-hint" { "Runs every so often (10s or more); the offset waits for late data without moving the window." }
                        fieldset.threshold-only id="check-thresholds" aria-describedby="thresholds-hint error-check-thresholds" {
                            legend { "Thresholds" }
                            p.hint id="thresholds-hint" {
                                "Strict comparisons; the first that matches, from crit down, gives the level; none is ok. "
                                "A recovery value keeps the level until the value passes it."
                            }
                            div id="threshold-rows" {}
                            button type="button" id="add-threshold" { "Add threshold" }
                            (slot("check", "thresholds"))
                        }
                        div.pair.threshold-only {
                            div {
                                label for="check-pending_for" { "Pending for" }
                                input id="check-pending_for" name="pending_for" list="durations" value="0s" autocomplete="off"
                                    aria-describedby="pending-hint error-check-pending_for";
                                (slot("check", "pending_for"))
                            }
                            div {
                                label for="check-no_data" { "A window without data" }
                                select id="check-no_data" name="no_data" aria-describedby="error-check-no_data" {
                                    option value="keep" selected { "keeps the level" }
                                    @for l in Level::ALL.iter().rev() { option value=(l.as_str()) { "is " (l.as_str()) } }
                                }
                                (slot("check", "no_data"))
                            }
                        }
                        p.hint.threshold-only id="pending-hint" { "A higher level must hold this long before it is reported." }
                        div.pair.deadman-only {
                            div {
                                label for="check-time_since" { "No payload for" }
                                input id="check-time_since" name="time_since" list="durations" value="5m" autocomplete="off"
                                    aria-describedby="error-check-time_since";
                                (slot("check", "time_since"))
                            }
                            div {
                                label for="check-level" { "Gives the level" }
                                select id="check-level" name="level" aria-describedby="error-check-level" {
                                    (level_options(false, "crit"))
                                }
                                (slot("check", "level"))
                            }
                        }
                        label for="check-message" { "Message" }
                        textarea id="check-message" name="message" rows="3" placeholder="the default message"
                            aria-describedby="message-hint error-check-message" {}
                        p.hint id="message-hint" {
                            "Variables: " code { "{{check}} {{level}} {{previous_level}} {{value}} {{metric}} {{fn}} {{algorithm}} {{version}} {{window}} {{time}} {{since}} {{tags.KEY}}" }
                        }
                        (slot("check", "message"))
                        fieldset id="check-tags" aria-describedby="error-check-tags" {
                            legend { "Tags" }
                            div id="tag-rows" {}
                            button type="button" id="add-tag" { "Add tag" }
                            (slot("check", "tags"))
                        }
                    }
                    div.editor-preview {
                        h3 { "Preview" }
                        div id="check-preview" aria-live="polite" {}
                    }
                }
                p.form-error id="check-form-error" role="alert" hidden {}
                div.actions {
                    button type="submit" id="save-check" { "Save check" }
                    button type="button" id="cancel-check" { "Cancel" }
                }
            }
        }

        // ---- The endpoint form ----
        dialog id="endpoint-dialog" aria-labelledby="endpoint-dialog-title" {
            form id="endpoint-form" method="dialog" novalidate {
                h2 id="endpoint-dialog-title" { "New endpoint" }
                label for="endpoint-name" { "Name" }
                input id="endpoint-name" name="name" required maxlength="200" autocomplete="off" aria-describedby="error-endpoint-name";
                (slot("endpoint", "name"))
                label for="endpoint-kind" { "Kind" }
                select id="endpoint-kind" name="kind" aria-describedby="kind-hint error-endpoint-kind" {
                    option value="slack" { "Slack (incoming webhook)" }
                    option value="pagerduty" { "PagerDuty (Events v2)" }
                    option value="http" { "HTTP" }
                    option value="email" { "Email (SMTP)" }
                    option value="alertmanager" { "Alertmanager" }
                }
                p.hint id="kind-hint" { "An endpoint keeps its kind; create another for a different one." }
                (slot("endpoint", "kind"))
                p.hint id="secret-hint" { "Secrets are never shown again. When one is stored, leave its field empty to keep it." }
                fieldset.kind-fields data-kind="slack" {
                    legend { "Slack" }
                    label for="endpoint-slack-url" { "Webhook URL" span.set-badge data-for="url" hidden { " (set)" } }
                    input id="endpoint-slack-url" name="slack-url" type="password" autocomplete="off" placeholder="https://hooks.slack.com/services/…"
                        aria-describedby="secret-hint error-endpoint-url";
                    label for="endpoint-slack-channel" { "Channel (optional)" }
                    input id="endpoint-slack-channel" name="slack-channel" autocomplete="off" placeholder="#alerts" aria-describedby="error-endpoint-channel";
                    (slot("endpoint", "channel"))
                }
                fieldset.kind-fields data-kind="pagerduty" hidden {
                    legend { "PagerDuty" }
                    label for="endpoint-pagerduty-routing_key" { "Routing key" span.set-badge data-for="routing_key" hidden { " (set)" } }
                    input id="endpoint-pagerduty-routing_key" name="pagerduty-routing_key" type="password" autocomplete="off"
                        aria-describedby="secret-hint error-endpoint-routing_key";
                    (slot("endpoint", "routing_key"))
                    label for="endpoint-pagerduty-url" { "Events URL (optional)" }
                    input id="endpoint-pagerduty-url" name="pagerduty-url" autocomplete="off" placeholder="https://events.pagerduty.com/v2/enqueue"
                        aria-describedby="error-endpoint-url";
                    label for="endpoint-pagerduty-client_url" { "Link in the incident (optional)" }
                    input id="endpoint-pagerduty-client_url" name="pagerduty-client_url" autocomplete="off" aria-describedby="error-endpoint-client_url";
                    (slot("endpoint", "client_url"))
                }
                fieldset.kind-fields data-kind="http" hidden {
                    legend { "HTTP" }
                    label for="endpoint-http-url" { "URL" span.set-badge data-for="url" hidden { " (set)" } }
                    input id="endpoint-http-url" name="http-url" type="password" autocomplete="off" placeholder="https://…"
                        aria-describedby="secret-hint error-endpoint-url";
                    label for="endpoint-http-method" { "Method" }
                    select id="endpoint-http-method" name="http-method" aria-describedby="error-endpoint-method" {
                        option value="POST" { "POST" } option value="PUT" { "PUT" } option value="PATCH" { "PATCH" }
                    }
                    (slot("endpoint", "method"))
                    fieldset id="endpoint-headers" aria-describedby="headers-hint error-endpoint-headers" {
                        legend { "Headers" }
                        p.hint id="headers-hint" { "Header values are secrets. On edit, leave every value empty to keep the stored headers; typing any replaces them all." }
                        div id="header-rows" {}
                        button type="button" id="add-header" { "Add header" }
                        (slot("endpoint", "headers"))
                    }
                    label for="endpoint-auth-type" { "Authentication" }
                    select id="endpoint-auth-type" name="auth-type" aria-describedby="error-endpoint-auth-type" {
                        option value="none" { "None" } option value="basic" { "Basic" } option value="bearer" { "Bearer token" }
                    }
                    (slot("endpoint", "auth-type"))
                    div id="auth-basic" hidden {
                        label for="endpoint-auth-username" { "Username" }
                        input id="endpoint-auth-username" name="auth-username" autocomplete="off" aria-describedby="error-endpoint-auth-username";
                        (slot("endpoint", "auth-username"))
                        label for="endpoint-auth-password" { "Password" span.set-badge data-for="auth.password" hidden { " (set)" } }
                        input id="endpoint-auth-password" name="auth-password" type="password" autocomplete="new-password" aria-describedby="secret-hint error-endpoint-auth-password";
                        (slot("endpoint", "auth-password"))
                    }
                    div id="auth-bearer" hidden {
                        label for="endpoint-auth-token" { "Token" span.set-badge data-for="auth.token" hidden { " (set)" } }
                        input id="endpoint-auth-token" name="auth-token" type="password" autocomplete="off" aria-describedby="secret-hint error-endpoint-auth-token";
                        (slot("endpoint", "auth-token"))
                    }
                    label for="endpoint-http-body_template" { "Body template (optional)" }
                    textarea id="endpoint-http-body_template" name="http-body_template" rows="3" placeholder="the status as JSON, with \"_version\": 1"
                        aria-describedby="error-endpoint-body_template" {}
                    (slot("endpoint", "body_template"))
                }
                fieldset.kind-fields data-kind="email" hidden {
                    legend { "Email" }
                    div.pair {
                        div {
                            label for="endpoint-email-host" { "SMTP host" }
                            input id="endpoint-email-host" name="email-host" autocomplete="off" aria-describedby="error-endpoint-host";
                            (slot("endpoint", "host"))
                        }
                        div {
                            label for="endpoint-email-port" { "Port" }
                            input id="endpoint-email-port" name="email-port" type="number" min="1" max="65535" step="1" placeholder="587"
                                aria-describedby="error-endpoint-port";
                            (slot("endpoint", "port"))
                        }
                    }
                    label for="endpoint-email-tls" { "TLS" }
                    select id="endpoint-email-tls" name="email-tls" aria-describedby="error-endpoint-tls" {
                        option value="starttls" { "STARTTLS (required)" } option value="tls" { "TLS from the start (465)" } option value="none" { "None (a local relay)" }
                    }
                    (slot("endpoint", "tls"))
                    label for="endpoint-email-username" { "Username (optional)" }
                    input id="endpoint-email-username" name="email-username" autocomplete="off" aria-describedby="error-endpoint-username";
                    (slot("endpoint", "username"))
                    label for="endpoint-email-password" { "Password" span.set-badge data-for="password" hidden { " (set)" } }
                    input id="endpoint-email-password" name="email-password" type="password" autocomplete="new-password" aria-describedby="secret-hint error-endpoint-password";
                    (slot("endpoint", "password"))
                    label for="endpoint-email-from" { "From" }
                    input id="endpoint-email-from" name="email-from" type="email" autocomplete="off" aria-describedby="error-endpoint-from";
                    (slot("endpoint", "from"))
                    label for="endpoint-email-to" { "To" }
                    input id="endpoint-email-to" name="email-to" autocomplete="off" placeholder="a@example.com, b@example.com" aria-describedby="error-endpoint-to";
                    (slot("endpoint", "to"))
                }
                fieldset.kind-fields data-kind="alertmanager" hidden {
                    legend { "Alertmanager" }
                    label for="endpoint-alertmanager-url" { "URL" }
                    input id="endpoint-alertmanager-url" name="alertmanager-url" autocomplete="off" placeholder="http://alertmanager:9093"
                        aria-describedby="error-endpoint-url";
                }
                (slot("endpoint", "url"))
                p.form-error id="endpoint-form-error" role="alert" hidden {}
                div.actions {
                    button type="submit" id="save-endpoint" { "Save endpoint" }
                    button type="button" id="cancel-endpoint" { "Cancel" }
                }
            }
        }

        // ---- The rule form ----
        dialog id="rule-dialog" aria-labelledby="rule-dialog-title" {
            form id="rule-form" method="dialog" novalidate {
                h2 id="rule-dialog-title" { "New rule" }
                label for="rule-name" { "Name" }
                input id="rule-name" name="name" required maxlength="200" autocomplete="off" aria-describedby="error-rule-name";
                (slot("rule", "name"))
                label.choice for="rule-enabled" {
                    input id="rule-enabled" type="checkbox" name="enabled" checked aria-describedby="error-rule-enabled";
                    " On: sends notifications"
                }
                (slot("rule", "enabled"))
                label for="rule-endpoint" { "Endpoint" }
                select id="rule-endpoint" name="endpoint" aria-describedby="error-rule-endpoint" {}
                (slot("rule", "endpoint"))
                fieldset id="rule-checks" aria-describedby="error-rule-checks" {
                    legend { "Checks" }
                    label.choice for="rule-checks-all" {
                        input id="rule-checks-all" type="radio" name="checks_mode" value="all" checked;
                        " Every check"
                    }
                    label.choice for="rule-checks-some" {
                        input id="rule-checks-some" type="radio" name="checks_mode" value="some";
                        " Only these:"
                    }
                    div.version-list id="rule-check-list" {}
                    (slot("rule", "checks"))
                }
                fieldset id="rule-when" aria-describedby="when-hint error-rule-when" {
                    legend { "When" }
                    p.hint id="when-hint" { "Any of these: a change from one level to another, or a level while it lasts." }
                    div id="when-rows" {}
                    button type="button" id="add-when" { "Add condition" }
                    (slot("rule", "when"))
                }
                fieldset id="rule-tags" aria-describedby="rule-tags-hint error-rule-tags" {
                    legend { "Tags" }
                    p.hint id="rule-tags-hint" { "All of these must hold for the check's tags (and algorithm, version)." }
                    div id="rule-tag-rows" {}
                    button type="button" id="add-rule-tag" { "Add tag condition" }
                    (slot("rule", "tags"))
                }
                div.pair {
                    div {
                        label for="rule-every" { "Every" }
                        input id="rule-every" name="every" list="durations" value="1m" autocomplete="off" aria-describedby="error-rule-every";
                        (slot("rule", "every"))
                    }
                    div {
                        label for="rule-repeat_every" { "Repeat every" }
                        input id="rule-repeat_every" name="repeat_every" list="durations" autocomplete="off" placeholder="never"
                            aria-describedby="repeat-hint error-rule-repeat_every";
                        (slot("rule", "repeat_every"))
                    }
                }
                p.hint id="repeat-hint" { "For a level while it lasts: how often to notify again." }
                fieldset id="rule-limit" aria-describedby="limit-hint error-rule-limit" {
                    legend { "Limit" }
                    p.hint id="limit-hint" { "At most this many notifications per period; the others are suppressed and counted. Empty for no limit." }
                    div.pair {
                        div {
                            label for="rule-limit-count" { "Count" }
                            input id="rule-limit-count" name="limit_count" type="number" min="1" step="1" aria-describedby="error-rule-limit-count";
                            (slot("rule", "limit-count"))
                        }
                        div {
                            label for="rule-limit-every" { "Per" }
                            input id="rule-limit-every" name="limit_every" list="durations" autocomplete="off" aria-describedby="error-rule-limit-every";
                            (slot("rule", "limit-every"))
                        }
                    }
                    (slot("rule", "limit"))
                }
                label for="rule-message" { "Message" }
                textarea id="rule-message" name="message" rows="3" placeholder="the check's message" aria-describedby="rule-message-hint error-rule-message" {}
                p.hint id="rule-message-hint" { "The check's variables, and " code { "{{rule}}" } "." }
                (slot("rule", "message"))
                p.form-error id="rule-form-error" role="alert" hidden {}
                div.actions {
                    button type="submit" id="save-rule" { "Save rule" }
                    button type="button" id="cancel-rule" { "Cancel" }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout_with("Alerts", Nav::Alerts, &signed_in, head(), main),
    )
}
