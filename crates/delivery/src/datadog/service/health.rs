//! What the intake's answers mean: [`classify`] reads a status code and its headers into an
//! [`Answer`] (delivered, retry later, split, refused), and [`Problem`] is what delivery fails
//! on, as the admin sees it. Read from status codes, never from the words of a body.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Serialize;

/// What Datadog delivery fails on, for the status (`problem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// 403 (or 401): the API key was refused. Nothing is sent until the key is changed.
    KeyRefused,
    /// 429: Datadog asks to slow down; retried after `X-RateLimit-Reset`.
    RateLimited,
    /// 5xx: the intake failed; retried with backoff.
    ServerError,
    /// 408, or no answer within the request timeout; retried.
    TimedOut,
    /// No connection could be made (DNS, refused, TLS); retried.
    Unreachable,
    /// 400: a request was refused as malformed; its payloads are dropped (not retried).
    BadRequest,
    /// Another answer (404 from a proxy, say); retried with backoff.
    UnexpectedAnswer,
}

/// What to do after an answer.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    /// 2xx: at Datadog.
    Delivered,
    /// Try again, after `after` if the intake said when.
    Retry {
        problem: Problem,
        after: Option<Duration>,
    },
    /// 413: too large; send it in halves.
    Split,
    /// Not retried: 400 drops the request's payloads, 403 holds everything until the key changes.
    Refused(Problem),
}

pub(crate) fn classify(status: StatusCode, headers: &HeaderMap) -> Answer {
    match status.as_u16() {
        200..=299 => Answer::Delivered,
        400 => Answer::Refused(Problem::BadRequest),
        401 | 403 => Answer::Refused(Problem::KeyRefused),
        408 => Answer::Retry {
            problem: Problem::TimedOut,
            after: None,
        },
        413 => Answer::Split,
        429 => Answer::Retry {
            problem: Problem::RateLimited,
            after: rate_limit_reset(headers),
        },
        500..=599 => Answer::Retry {
            problem: Problem::ServerError,
            after: None,
        },
        _ => Answer::Retry {
            problem: Problem::UnexpectedAnswer,
            after: None,
        },
    }
}

/// `X-RateLimit-Reset`: seconds until the limit resets (Datadog's rate-limit headers); capped
/// at ten minutes so that a wrong header cannot stall delivery for long.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("x-ratelimit-reset")?.to_str().ok()?.trim();
    let secs: f64 = v.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(600.0)))
}

/// A transport error (no status) as a problem.
pub(crate) fn transport_problem(e: &reqwest::Error) -> Problem {
    if e.is_timeout() {
        Problem::TimedOut
    } else {
        Problem::Unreachable
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_status() {
        let none = HeaderMap::new();
        let mut reset = HeaderMap::new();
        reset.insert("X-RateLimit-Reset", "7".parse().unwrap());
        let s = |c| StatusCode::from_u16(c).unwrap();
        assert_eq!(classify(s(202), &none), Answer::Delivered);
        assert_eq!(
            classify(s(400), &none),
            Answer::Refused(Problem::BadRequest)
        );
        assert_eq!(
            classify(s(403), &none),
            Answer::Refused(Problem::KeyRefused)
        );
        assert_eq!(classify(s(413), &none), Answer::Split);
        assert_eq!(
            classify(s(429), &reset),
            Answer::Retry {
                problem: Problem::RateLimited,
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify(s(429), &none),
            Answer::Retry {
                problem: Problem::RateLimited,
                after: None
            }
        );
        assert!(matches!(
            classify(s(503), &none),
            Answer::Retry {
                problem: Problem::ServerError,
                ..
            }
        ));
        assert!(matches!(
            classify(s(408), &none),
            Answer::Retry {
                problem: Problem::TimedOut,
                ..
            }
        ));
    }
}
