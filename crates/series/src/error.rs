//! The crate's one error type.

use std::path::PathBuf;

use crate::ingest::Refusal;

/// What went wrong, and where a person can act on it.
#[derive(Debug, thiserror::Error)]
pub enum SeriesError {
    /// A query's `fn` is not one of the functions the store computes.
    #[error(
        "unknown function `{given}`: use one of mean, min, max, sum, count, last, p50, p90, p95, p99"
    )]
    UnknownFunction { given: String },

    /// A query's `every` is not a window length the store serves.
    #[error("`{given}` is not a window length: {problem} (for example 10s, 1m, 5m, 1h, 1d)")]
    BadEvery {
        given: String,
        problem: &'static str,
    },

    /// A query's `algorithm` is not `owner/name`.
    #[error("`{given}` is not an algorithm: expected owner/name")]
    BadAlgorithm { given: String },

    /// A query's range holds no time.
    #[error("`from` ({from}) must be before `to` ({to})")]
    EmptyRange { from: String, to: String },

    /// One payload given to [`SeriesStore::ingest`](crate::SeriesStore::ingest) was refused
    /// (and counted); nothing of it was stored.
    #[error("payload refused: {0}")]
    Refused(Refusal),

    /// A [`SeriesConfig`](crate::SeriesConfig) field is out of its range.
    #[error("series configuration: `{field}` {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },

    /// Another store (in this process or another) has the directory open.
    #[error(
        "{path} is in use by another series store; stop that one, or give this one another directory"
    )]
    Locked { path: PathBuf },

    /// Reading or writing the store's files failed. On ingest, nothing of the batch was stored.
    #[error("series store: {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SeriesError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| SeriesError::Io {
            action,
            path,
            source,
        }
    }
}
