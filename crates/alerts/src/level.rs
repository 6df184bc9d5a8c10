//! Levels, as InfluxDB names them: `crit > warn > info > ok`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Info,
    Warn,
    Crit,
}

impl Level {
    pub const ALL: [Level; 4] = [Level::Ok, Level::Info, Level::Warn, Level::Crit];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Crit => "crit",
        }
    }

    /// Whether the level is a problem (something a pager should open an incident for).
    pub fn is_problem(self) -> bool {
        self != Level::Ok
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| "must be one of crit, warn, info, ok".to_string())
    }
}
