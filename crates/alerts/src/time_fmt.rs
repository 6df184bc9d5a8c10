//! Times as the alerts database keeps them (microseconds since the epoch) and as the API
//! shows them (RFC 3339, UTC).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub(crate) fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1000) as i64
}

pub(crate) fn to_datetime(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub(crate) fn rfc3339(us: i64) -> String {
    to_datetime(us)
        .format(&Rfc3339)
        .expect("every UTC time has an RFC 3339 form")
}
