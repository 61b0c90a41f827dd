//! Time as hooklatch stores and signs it. Below both the store (which writes these
//! texts) and the sources (which normalise a provider's times to them), so neither has
//! to import the other.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;

/// How every timestamp is stored as text: RFC 3339 UTC with microseconds, the same text
/// on both backends so lexical order is time order.
pub const STORED_TIMESTAMP: &[BorrowedFormatItem<'static>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

/// The current time as stored ([`STORED_TIMESTAMP`]).
pub fn now_text() -> String {
    time_text(OffsetDateTime::now_utc())
}

/// `now_text()` moved `ahead` into the future.
pub fn text_after(ahead: Duration) -> String {
    time_text(OffsetDateTime::now_utc() + ahead)
}

fn time_text(now: OffsetDateTime) -> String {
    now.format(STORED_TIMESTAMP)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

/// Seconds since the Unix epoch, as signatures carry them; 0 on a clock set before 1970.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
