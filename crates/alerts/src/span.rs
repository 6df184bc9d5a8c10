//! Durations as users write them: `10s`, `1m`, `5m`, `1h30m`, `1d`, `0s`.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A whole number of seconds, written and read as `1h30m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(u64);

impl Span {
    pub const fn secs(s: u64) -> Self {
        Span(s)
    }

    pub fn as_secs(self) -> u64 {
        self.0
    }

    pub fn as_micros(self) -> i64 {
        self.0 as i64 * 1_000_000
    }

    pub fn as_duration(self) -> Duration {
        Duration::from_secs(self.0)
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Reads `10s`, `1m`, `1h30m`, `2d`, `1w` (the series API's form); `0s` is zero.
    pub fn parse(s: &str) -> Result<Span, &'static str> {
        match insights_series::parse_seconds(s) {
            Ok(t) if t <= 400 * 86_400 => Ok(Span(t)),
            Ok(_) | Err("is too large") => Err("must be at most 400d"),
            Err("is empty") => Err("is empty; write a duration such as 30s, 5m or 1h"),
            Err(problem) => Err(problem),
        }
    }
}

impl fmt::Display for Span {
    /// The shortest form: 90 seconds print as `1m30s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.0;
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
            if s >= len {
                write!(f, "{}{unit}", s / len)?;
                s %= len;
            }
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Span::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_prints_the_forms_users_write() {
        for (given, secs, shown) in [
            ("0s", 0, "0s"),
            ("10s", 10, "10s"),
            ("90s", 90, "1m30s"),
            ("1h30m", 5400, "1h30m"),
            ("2d", 172_800, "2d"),
        ] {
            let s = Span::parse(given).unwrap();
            assert_eq!((s.as_secs(), s.to_string().as_str()), (secs, shown));
        }
        for bad in ["", "5", "m", "1x", "500ms", "401d"] {
            assert!(Span::parse(bad).is_err(), "{bad}");
        }
    }
}
