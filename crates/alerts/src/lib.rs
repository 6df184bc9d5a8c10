//! Alerting on the series store: threshold and deadman checks, notification endpoints and
//! rules, and a durable outbox that delivers every notification or counts it dropped.
//!
//! The data path: the scheduler runs each check at its times (`every`, delayed by
//! `offset`), reads one aggregate per series from [`insights_series::SeriesStore`], and in one
//! database transaction stores each series' new state, the status change if there was one,
//! and one outbox row per rule that the change matches. The outbox sends them, retrying
//! within the delivery window, and records what became of each.

mod alerts;
mod check;
mod db;
mod doc;
mod endpoint;
mod engine;
mod error;
mod level;
mod notification;
mod notify;
mod outbox;
mod rule;
mod span;
mod template;
mod time_fmt;

pub use alerts::{Alerts, AlertsConfig, AlertsTasks, NotificationFilter, StatusFilter};
pub use check::{
    AlgorithmSelector, Check, CheckKind, Comparison, DeadmanCheck, NoData, Threshold,
    ThresholdCheck,
};
pub use endpoint::{
    Endpoint, EndpointKind, HttpAuth, Method, PAGERDUTY_EVENTS_URL, Secret, TlsMode,
};
pub use engine::{Catalog, ExpectedSeries, RunReport};
pub use error::{AlertError, FieldError};
pub use level::Level;
pub use notification::{Notification, dedup_key};
pub use notify::{SendError, Sender, Sent, test_notification};
pub use rule::{Limit, Rule, TagOp, TagRule, When};
pub use span::Span;
pub use template::{Template, Vars};
