//! What a user types into a query, parsed once into types that hold their rules: the aggregate
//! [`Function`], the window length [`Every`], and the [`AlgorithmPath`] `owner/name`. Each
//! `FromStr` error names what is allowed, so that the HTTP layer can answer a 400 that names the
//! parameter and passes the message on.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::SeriesError;

/// The aggregate computed per window. (Not called `Fn`, which would shadow the closure trait
/// wherever it is imported.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Function {
    Mean,
    Min,
    Max,
    Sum,
    Count,
    /// The value of the latest point by payload `time`; among points of the same time, the one
    /// that arrived last.
    Last,
    P50,
    P90,
    P95,
    P99,
}

impl Function {
    /// Every function, in the order the error message lists them.
    pub const ALL: [Function; 10] = [
        Function::Mean,
        Function::Min,
        Function::Max,
        Function::Sum,
        Function::Count,
        Function::Last,
        Function::P50,
        Function::P90,
        Function::P95,
        Function::P99,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Function::Mean => "mean",
            Function::Min => "min",
            Function::Max => "max",
            Function::Sum => "sum",
            Function::Count => "count",
            Function::Last => "last",
            Function::P50 => "p50",
            Function::P90 => "p90",
            Function::P95 => "p95",
            Function::P99 => "p99",
        }
    }

    /// The quantile a `pNN` function reads (0.5 for `p50`), `None` for the exact functions.
    pub fn quantile(self) -> Option<f64> {
        match self {
            Function::P50 => Some(0.5),
            Function::P90 => Some(0.9),
            Function::P95 => Some(0.95),
            Function::P99 => Some(0.99),
            _ => None,
        }
    }

    /// Whether the answer is exact whatever level serves it (`mean`, `min`, `max`, `sum`,
    /// `count`, `last`). Quantiles are exact from raw points and within
    /// [`RELATIVE_ERROR`](crate::RELATIVE_ERROR) from rollups.
    pub fn is_exact(self) -> bool {
        self.quantile().is_none()
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Function {
    type Err = SeriesError;

    fn from_str(s: &str) -> Result<Self, SeriesError> {
        Function::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or_else(|| SeriesError::UnknownFunction { given: shorten(s) })
    }
}

/// The length of a query's windows: whole seconds, at least [`Every::MIN`] (10 s), at most
/// [`Every::MAX`] (366 days). Windows start at multiples of it counted from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Every(u64);

impl Every {
    /// The shortest window: 10 s.
    pub const MIN: Duration = Duration::from_secs(10);
    /// The longest window: 366 days.
    pub const MAX: Duration = Duration::from_secs(366 * 86_400);

    /// `d` as a window length, if it is whole seconds within [`Every::MIN`]..=[`Every::MAX`].
    pub fn new(d: Duration) -> Result<Self, SeriesError> {
        let given = || format_seconds(d.as_secs());
        if d.subsec_nanos() != 0 {
            return Err(SeriesError::BadEvery {
                given: format!("{d:?}"),
                problem: "must be whole seconds",
            });
        }
        if d < Self::MIN {
            return Err(SeriesError::BadEvery {
                given: given(),
                problem: "must be at least 10s",
            });
        }
        if d > Self::MAX {
            return Err(SeriesError::BadEvery {
                given: given(),
                problem: "must be at most 366d",
            });
        }
        Ok(Every(d.as_secs()))
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub(crate) fn micros(self) -> i64 {
        self.0 as i64 * 1_000_000
    }
}

impl fmt::Display for Every {
    /// The shortest form in days, hours, minutes and seconds: `90s` prints as `1m30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_seconds(self.0))
    }
}

fn format_seconds(mut s: u64) -> String {
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

/// Reads a duration as users write it — numbers each followed by a unit `s`, `m`, `h`, `d` or
/// `w` (`10s`, `1h30m`, `2d`, `0s`) — as whole seconds; the callers set the bounds. The error
/// says what is wrong, to follow the name of the field.
pub fn parse_seconds(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() {
        return Err("is empty");
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err("needs a number before each unit");
        }
        let n: u64 = rest[..digits].parse().map_err(|_| "is too long")?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            "" => return Err("needs a unit after the number: s, m, h, d or w"),
            "ms" | "us" | "µs" | "ns" => return Err("must be whole seconds"),
            _ => return Err("has an unknown unit; use s, m, h, d or w"),
        };
        rest = &rest[unit_len..];
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or("is too large")?;
    }
    Ok(total)
}

impl FromStr for Every {
    type Err = SeriesError;

    /// `10s`, `1m`, `5m`, `1h`, `1h30m`, `1d`, `2w`: numbers each followed by a unit `s`, `m`,
    /// `h`, `d` or `w`.
    fn from_str(s: &str) -> Result<Self, SeriesError> {
        let bad = |problem| SeriesError::BadEvery {
            given: shorten(s),
            problem,
        };
        let total = parse_seconds(s).map_err(|problem| match problem {
            "is too large" => bad("must be at most 366d"),
            p => bad(p),
        })?;
        Every::new(Duration::from_secs(total)).map_err(|e| match e {
            SeriesError::BadEvery { problem, .. } => bad(problem),
            other => other,
        })
    }
}

/// An algorithm, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlgorithmPath {
    pub owner: String,
    pub name: String,
}

impl AlgorithmPath {
    pub fn new(owner: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for AlgorithmPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

impl FromStr for AlgorithmPath {
    type Err = SeriesError;

    fn from_str(s: &str) -> Result<Self, SeriesError> {
        match s.split_once('/') {
            Some((owner, name)) if !owner.is_empty() && !name.is_empty() && !name.contains('/') => {
                Ok(AlgorithmPath::new(owner, name))
            }
            _ => Err(SeriesError::BadAlgorithm { given: shorten(s) }),
        }
    }
}

/// What a user typed, cut to 64 characters for an error message.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn functions_parse_and_print_as_typed() {
        for f in Function::ALL {
            assert_eq!(f.as_str().parse::<Function>().unwrap(), f);
        }
        let e = "avg".parse::<Function>().unwrap_err().to_string();
        assert_eq!(
            e,
            "unknown function `avg`: use one of mean, min, max, sum, count, last, p50, p90, p95, p99"
        );
        assert!("P99".parse::<Function>().is_err());
    }

    #[test]
    fn every_parses_units_and_refuses_with_reasons() {
        let secs = |s: &str| s.parse::<Every>().map(Every::as_secs);
        assert_eq!(secs("10s").unwrap(), 10);
        assert_eq!(secs("1m").unwrap(), 60);
        assert_eq!(secs("1h30m").unwrap(), 5400);
        assert_eq!(secs("2w").unwrap(), 14 * 86_400);
        assert_eq!(secs("90s").unwrap(), 90);
        assert_eq!(Every(90).to_string(), "1m30s");
        assert_eq!(Every(86_400).to_string(), "1d");
        assert_eq!(Every(3600).to_string(), "1h");
        for (given, message) in [
            ("5s", "`5s` is not a window length: must be at least 10s"),
            ("", "`` is not a window length: is empty"),
            (
                "10",
                "`10` is not a window length: needs a unit after the number: s, m, h, d or w",
            ),
            (
                "500ms",
                "`500ms` is not a window length: must be whole seconds",
            ),
            (
                "1y",
                "`1y` is not a window length: has an unknown unit; use s, m, h, d or w",
            ),
            (
                "m",
                "`m` is not a window length: needs a number before each unit",
            ),
            (
                "367d",
                "`367d` is not a window length: must be at most 366d",
            ),
            (
                "99999999999999999999999s",
                "`99999999999999999999999s` is not a window length: is too long",
            ),
            (
                "9999999999999999w",
                "`9999999999999999w` is not a window length: must be at most 366d",
            ),
        ] {
            let e = given.parse::<Every>().unwrap_err().to_string();
            assert!(e.starts_with(message), "{given}: {e}");
            assert!(e.ends_with("(for example 10s, 1m, 5m, 1h, 1d)"), "{e}");
        }
        assert!(Every::new(Duration::from_millis(10_500)).is_err());
    }

    #[test]
    fn algorithm_paths() {
        let a: AlgorithmPath = "asli/credit_card_approval".parse().unwrap();
        assert_eq!(a.owner, "asli");
        assert_eq!(a.to_string(), "asli/credit_card_approval");
        for bad in ["asli", "/x", "x/", "a/b/c", ""] {
            assert_eq!(
                bad.parse::<AlgorithmPath>().unwrap_err().to_string(),
                format!("`{bad}` is not an algorithm: expected owner/name")
            );
        }
    }
}
