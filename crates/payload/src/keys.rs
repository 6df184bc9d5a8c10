//! The payload's operational key names, in one place: the encoder writes them, the store,
//! the bridge, the series and the panel read them, and the report parser refuses them as metric
//! names. A key renamed here is renamed everywhere.

/// The algorithm's name (`credit_card_approval`).
pub const ALGORITHM_NAME: &str = "algorithm_name";
/// The algorithm's owner (`demo`).
pub const ALGORITHM_OWNER: &str = "algorithm_owner";
/// The version that ran (`1.0.0`).
pub const ALGORITHM_VERSION: &str = "algorithm_version";
/// The worker process that served the execution.
pub const SESSION_ID: &str = "session_id";
/// The execution.
pub const REQUEST_ID: &str = "request_id";
/// How long the execution took, in whole milliseconds.
pub const DURATION_MILLISECONDS: &str = "duration_milliseconds";
/// When the execution started: UTC, microseconds, no zone.
pub const TIME: &str = "time";
/// `success` or `error`, for versions that opted in.
pub const STATUS: &str = "status";
/// The error's type, with `status: error`.
pub const ERROR_TYPE: &str = "error_type";

/// The seven keys every payload has, in the order of Algorithmia's documented example.
pub const OPERATIONAL: [&str; 7] = [
    DURATION_MILLISECONDS,
    ALGORITHM_VERSION,
    REQUEST_ID,
    TIME,
    ALGORITHM_NAME,
    SESSION_ID,
    ALGORITHM_OWNER,
];

/// The three that say which algorithm version ran (InfluxDB tags, Datadog tags, series keys).
pub const ALGORITHM: [&str; 3] = [ALGORITHM_NAME, ALGORITHM_OWNER, ALGORITHM_VERSION];

/// The two identifiers: fields, never tags or labels (unbounded cardinality).
pub const IDENTIFIERS: [&str; 2] = [SESSION_ID, REQUEST_ID];
