//! The store's levels and its units of time. Internally every time is an `i64` of microseconds
//! since the Unix epoch (the payload's `time` has microseconds); the public API speaks
//! [`OffsetDateTime`].

use time::OffsetDateTime;

/// Microseconds since the Unix epoch.
pub(crate) type Micros = i64;

pub(crate) const SECOND: Micros = 1_000_000;
pub(crate) const MINUTE: Micros = 60 * SECOND;
pub(crate) const HOUR: Micros = 60 * MINUTE;

/// Where points are kept: raw, or rolled up into windows of one minute or one hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Every point, for a recent period.
    Raw,
    /// 1-minute windows (starts at multiples of 60 s since the epoch).
    Minute,
    /// 1-hour windows (starts at multiples of 3600 s since the epoch).
    Hour,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Raw, Level::Minute, Level::Hour];

    /// The label in `/metrics`: `raw`, `1m`, `1h`.
    pub fn label(self) -> &'static str {
        match self {
            Level::Raw => "raw",
            Level::Minute => "1m",
            Level::Hour => "1h",
        }
    }

    /// The window length in microseconds; a raw point is its own window of 1 µs.
    pub(crate) fn width(self) -> Micros {
        match self {
            Level::Raw => 1,
            Level::Minute => MINUTE,
            Level::Hour => HOUR,
        }
    }
}

/// One value per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerLevel<T> {
    pub raw: T,
    pub minute: T,
    pub hour: T,
}

impl<T> PerLevel<T> {
    pub fn get(&self, level: Level) -> &T {
        match level {
            Level::Raw => &self.raw,
            Level::Minute => &self.minute,
            Level::Hour => &self.hour,
        }
    }

    pub fn get_mut(&mut self, level: Level) -> &mut T {
        match level {
            Level::Raw => &mut self.raw,
            Level::Minute => &mut self.minute,
            Level::Hour => &mut self.hour,
        }
    }
}

pub(crate) fn micros(t: OffsetDateTime) -> Micros {
    let us = t.unix_timestamp_nanos().div_euclid(1000);
    us.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The instant `us`, clamped into what [`OffsetDateTime`] can hold (years ±9999).
pub(crate) fn datetime(us: Micros) -> OffsetDateTime {
    let nanos = i128::from(us) * 1000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or_else(|_| {
        if us < 0 {
            time::PrimitiveDateTime::MIN.assume_utc()
        } else {
            time::PrimitiveDateTime::MAX.assume_utc()
        }
    })
}

/// The start of the window of length `width` that holds `t`.
pub(crate) fn align_down(t: Micros, width: Micros) -> Micros {
    t.saturating_sub(t.rem_euclid(width))
}

/// The first window start at or after `t`.
pub(crate) fn align_up(t: Micros, width: Micros) -> Micros {
    let down = align_down(t, width);
    if down == t {
        t
    } else {
        down.saturating_add(width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_counts_from_the_epoch_also_before_it() {
        assert_eq!(align_down(61 * SECOND, MINUTE), MINUTE);
        assert_eq!(align_down(-1, MINUTE), -MINUTE);
        assert_eq!(align_up(61 * SECOND, MINUTE), 2 * MINUTE);
        assert_eq!(align_up(MINUTE, MINUTE), MINUTE);
        let t = time::macros::datetime!(2021-02-20 00:21:54.867231 UTC);
        assert_eq!(datetime(micros(t)), t);
    }
}
