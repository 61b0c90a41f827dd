//! The read side: what the admin API, the console and the commands ask a store for, and
//! the shapes it answers with. Filters are validated here (a bad value names its
//! parameter), so a store only ever binds checked values.
//!
//! Paging is keyset paging on the order the lists are sorted in, newest first:
//! `(first_seen_at, id)` for events, `(created_at, id)` for conversions. A cursor is the
//! key of the last item of a page, so events that arrive while someone pages (they are
//! newer than every key already handed out) never shift a page, and walking
//! `next_cursor` visits every event that existed at the start exactly once.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::Source;

mod detail;
mod totals;

pub use self::detail::{ConflictJson, DetailJson, EventDetail};
pub use self::totals::TotalsCheck;
pub use crate::model::outbox::{ForwardInfo, ForwardStatus};

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
pub const MAX_LIMIT: u32 = 500;

/// A filter value that cannot be used, naming the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{parameter}: {message}")]
pub struct InvalidFilter {
    pub parameter: String,
    pub message: String,
}

impl InvalidFilter {
    pub fn new(parameter: &str, message: impl Into<String>) -> InvalidFilter {
        InvalidFilter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }
}

/// An instant in the stored text form: RFC 3339 UTC with microseconds, so it compares
/// with stored timestamps as text on SQLite and casts to `timestamptz` on PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(String);

impl Timestamp {
    /// Any RFC 3339 time, in any offset.
    pub fn parse(text: &str, parameter: &str) -> Result<Timestamp, InvalidFilter> {
        let invalid = || {
            InvalidFilter::new(
                parameter,
                "must be an RFC 3339 time such as 2026-11-30T08:00:00Z",
            )
        };
        let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| invalid())?;
        // 9999-12-31T23:59:59-01:00 is past the last UTC year the calendar holds.
        let utc = time
            .checked_to_offset(time::UtcOffset::UTC)
            .filter(|t| t.year() >= 1)
            .ok_or_else(invalid)?;
        Ok(Timestamp::from_time(utc))
    }

    pub fn from_time(time: OffsetDateTime) -> Timestamp {
        let utc = time.to_offset(time::UtcOffset::UTC);
        Timestamp(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second(),
            utc.microsecond()
        ))
    }

    /// Now minus `age`, for pruning; an age past the year 1 is the year 1 (the operator
    /// may type any number of days).
    pub fn ago(age: std::time::Duration) -> Timestamp {
        let then = time::Duration::try_from(age)
            .ok()
            .and_then(|age| OffsetDateTime::now_utc().checked_sub(age))
            .filter(|then| then.year() >= 1);
        match then {
            Some(then) => Timestamp::from_time(then),
            None => Timestamp(KeyRange::EARLIEST.into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The time window and cursor of a list as bound to SQL: one plain time bound and one
/// `(time, id)` key bound. `until` (newest first) or `since` (oldest first) is folded into
/// the key with the cursor, and absent bounds become the widest range, so each list is
/// one index range bounded on both ends. (A `? IS NULL OR …` bound makes SQLite scan,
/// and given two upper bounds it may pick the looser one.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// Newest first: `time >= since`; oldest first: `time < until`.
    pub bound: Timestamp,
    /// Newest first: `(time, id) < key`; oldest first: `(time, id) > key`.
    pub key_at: Timestamp,
    pub key_id: i64,
}

impl KeyRange {
    const EARLIEST: &str = "0001-01-01T00:00:00.000000Z";
    const LATEST: &str = "9999-12-31T23:59:59.999999Z";

    /// Newest first: first seen in `[since, until)`, before the cursor.
    pub fn descending(
        since: Option<&Timestamp>,
        until: Option<&Timestamp>,
        after: Option<&Cursor>,
    ) -> KeyRange {
        // `time < until` is `(time, id) < (until, i64::MIN)`: ids are never i64::MIN.
        let until = match until {
            Some(t) => (t.clone(), i64::MIN),
            None => (Timestamp(Self::LATEST.into()), i64::MAX),
        };
        let key = match after {
            Some(c) => until.min((c.at.clone(), c.id)),
            None => until,
        };
        KeyRange {
            bound: since.cloned().unwrap_or(Timestamp(Self::EARLIEST.into())),
            key_at: key.0,
            key_id: key.1,
        }
    }

    /// Oldest first: first seen in `[since, until)`, after the cursor.
    pub fn ascending(
        since: Option<&Timestamp>,
        until: Option<&Timestamp>,
        after: Option<&Cursor>,
    ) -> KeyRange {
        // `time >= since` is `(time, id) > (since, i64::MIN)`.
        let since = (
            since.cloned().unwrap_or(Timestamp(Self::EARLIEST.into())),
            i64::MIN,
        );
        let key = match after {
            Some(c) => since.max((c.at.clone(), c.id)),
            None => since,
        };
        KeyRange {
            bound: until.cloned().unwrap_or(Timestamp(Self::LATEST.into())),
            key_at: key.0,
            key_id: key.1,
        }
    }
}

/// The key of the last item of a page, handed out as opaque base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: Timestamp,
    pub id: i64,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at, self.id))
    }

    pub fn decode(text: &str) -> Result<Cursor, InvalidFilter> {
        let bad = || InvalidFilter::new("cursor", "is not a cursor this server handed out");
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (at, id) = raw.split_once('|').ok_or_else(bad)?;
        Ok(Cursor {
            at: Timestamp::parse(at, "cursor").map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// A page size: 1 to [`MAX_LIMIT`].
pub fn parse_limit(text: &str) -> Result<u32, InvalidFilter> {
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(InvalidFilter::new(
            "limit",
            format!("must be a whole number from 1 to {MAX_LIMIT}"),
        )),
    }
}

pub fn parse_bool(text: &str, parameter: &str) -> Result<bool, InvalidFilter> {
    match text {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(InvalidFilter::new(parameter, "must be true or false")),
    }
}

pub fn parse_source(text: &str, parameter: &str) -> Result<Source, InvalidFilter> {
    Source::parse(text)
        .ok_or_else(|| InvalidFilter::new(parameter, "is 1-64 characters of a-z, 0-9, _ and -"))
}

impl ForwardStatus {
    pub fn parse(text: &str) -> Result<ForwardStatus, InvalidFilter> {
        match text {
            "pending" => Ok(ForwardStatus::Pending),
            "delivered" => Ok(ForwardStatus::Delivered),
            "failed" => Ok(ForwardStatus::Failed),
            _ => Err(InvalidFilter::new(
                "forward",
                "must be pending, delivered or failed",
            )),
        }
    }
}

/// Filters of the event list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub source: Option<Source>,
    pub event_type: Option<String>,
    /// Exact, like the store compares ids.
    pub event_id: Option<String>,
    /// `first_seen_at >= since`.
    pub since: Option<Timestamp>,
    /// `first_seen_at < until`.
    pub until: Option<Timestamp>,
    /// `Some(true)`: delivered more than once; `Some(false)`: exactly once.
    pub duplicated: Option<bool>,
    /// `Some(true)`: at least one conflicting delivery; `Some(false)`: none.
    pub conflicted: Option<bool>,
    pub forward: Option<ForwardStatus>,
}

/// Which prepared statement serves an event list: the one whose index matches the most
/// selective filter given (SQLite cannot choose an index from a bound parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventListPlan {
    ByEventId,
    /// From the outbox: pending and failed forwards are few among many events.
    ByForward,
    /// `duplicated=true` / `conflicted=true`: few events among many, each set in its own
    /// partial index.
    Duplicated,
    Conflicted,
    /// `event_type`: its own index (migration 009), so a rare or unknown type answers
    /// in one range instead of a walk through every event.
    ByType,
    BySource,
    ByTime,
}

impl EventFilter {
    pub fn plan(&self) -> EventListPlan {
        if self.event_id.is_some() {
            EventListPlan::ByEventId
        } else if matches!(
            self.forward,
            Some(ForwardStatus::Pending | ForwardStatus::Failed)
        ) {
            EventListPlan::ByForward
        } else if self.conflicted == Some(true) {
            EventListPlan::Conflicted
        } else if self.duplicated == Some(true) {
            EventListPlan::Duplicated
        } else if self.event_type.is_some() {
            EventListPlan::ByType
        } else if self.source.is_some() {
            EventListPlan::BySource
        } else {
            EventListPlan::ByTime
        }
    }
}

/// An event in a list (SPEC §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventItem {
    pub webhook_event_id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: Option<String>,
    pub conversion_id: Option<i64>,
    pub delivery_count: i64,
    pub conflict_count: i64,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub forward: Option<ForwardInfo>,
}

impl EventItem {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: Timestamp(self.first_seen_at.clone()),
            id: self.webhook_event_id,
        }
    }
}

/// Filters of the conversion list; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConversionFilter {
    /// Upper-cased, as stored.
    pub status: Option<String>,
    /// Upper-cased, as stored.
    pub currency: Option<String>,
    pub order_id: Option<String>,
    /// `created_at >= since`.
    pub since: Option<Timestamp>,
    /// `created_at < until`.
    pub until: Option<Timestamp>,
}

/// A conversion (SPEC §5.1). Amounts are exact decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConversionItem {
    pub conversion_id: i64,
    pub source: String,
    pub external_conversion_id: Option<String>,
    /// The event that created it.
    pub event_id: String,
    pub order_id: Option<String>,
    pub sale_amount: String,
    pub commission_amount: String,
    pub currency: Option<String>,
    pub status: Option<String>,
    pub affiliate_id: Option<String>,
    pub affiliate_code: Option<String>,
    pub tracking_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl ConversionItem {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: Timestamp(self.created_at.clone()),
            id: self.conversion_id,
        }
    }
}

/// Conversions of one status and currency, with exact sums.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SummaryGroup {
    pub status: Option<String>,
    pub currency: Option<String>,
    pub count: i64,
    pub sale_amount: String,
    pub commission_amount: String,
}

/// Per-source counts from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStats {
    pub source: String,
    pub events: i64,
    pub deliveries: i64,
    /// `deliveries - events`.
    pub duplicates: i64,
    pub conflicts: i64,
    pub last_seen_at: String,
}

/// Filters of `hooklatch export`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    pub source: Option<Source>,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
}

/// One exported event: a JSON line of `hooklatch export`, read back by `import`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ExportItem {
    pub source: String,
    pub event_id: String,
    pub event_type: Option<String>,
    /// The stored body as it is stored (see [`payload_raw`]); `null` once pruned.
    pub payload: Box<RawValue>,
    pub first_seen_at: String,
    pub last_seen_at: String,
    pub delivery_count: i64,
    /// The paging key; not part of the line.
    #[serde(skip)]
    pub webhook_event_id: i64,
}

impl ExportItem {
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: Timestamp(self.first_seen_at.clone()),
            id: self.webhook_event_id,
        }
    }
}

/// Payloads cleared (or, on a dry run, that would be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Pruned {
    pub events: u64,
    pub conflicts: u64,
}

/// A stored body for an export line: the stored text itself, so key order, number text
/// and spacing stay as received, less any line break between tokens (raw line breaks
/// cannot occur inside a JSON string), so the line stays one line. `null` when pruned
/// (or, defensively, unreadable).
pub fn payload_raw(payload: Option<&str>) -> Box<RawValue> {
    let Some(text) = payload else {
        return RawValue::NULL.to_owned();
    };
    let text = if text.contains(['\n', '\r']) {
        text.replace(['\n', '\r'], "")
    } else {
        text.to_owned()
    };
    RawValue::from_string(text).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

/// A stored body as a JSON value; `null` when pruned (or, defensively, unreadable).
pub fn payload_value(payload: Option<&str>) -> Value {
    payload
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or(Value::Null)
}

/// Splits `limit + 1` rows into a page and the cursor of the next one.
pub fn page<T>(
    mut rows: Vec<T>,
    limit: u32,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<String>) {
    let limit = limit as usize;
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(|last| key(last).encode());
        (rows, next)
    } else {
        (rows, None)
    }
}

/// Sorts summary groups the same way on every backend: status, then currency, nulls
/// first.
pub fn sort_groups(groups: &mut [SummaryGroup]) {
    groups.sort_by(|a, b| (&a.status, &a.currency).cmp(&(&b.status, &b.currency)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_normalise_to_stored_text() {
        assert_eq!(
            Timestamp::parse("2026-11-30T10:00:00+02:00", "since")
                .unwrap()
                .as_str(),
            "2026-11-30T08:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::parse("2026-11-30T08:00:00.1234567Z", "since")
                .unwrap()
                .as_str(),
            "2026-11-30T08:00:00.123456Z"
        );
        let err = Timestamp::parse("yesterday", "until").unwrap_err();
        assert_eq!(err.parameter, "until");
        for edge in ["9999-12-31T23:59:59-23:59", "0000-01-01T00:00:00+01:00"] {
            assert_eq!(
                Timestamp::parse(edge, "since").unwrap_err().parameter,
                "since"
            );
        }
    }

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let cursor = Cursor {
            at: Timestamp::parse("2026-11-30T08:00:00Z", "x").unwrap(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        for bad in ["", "!!", "bm9ucGlwZQ", &URL_SAFE_NO_PAD.encode("2026|x")] {
            assert_eq!(Cursor::decode(bad).unwrap_err().parameter, "cursor");
        }
    }

    #[test]
    fn key_ranges_fold_the_window_into_the_cursor() {
        let t = |s: &str| Timestamp::parse(s, "t").unwrap();
        let cursor = Cursor {
            at: t("2026-11-30T08:00:00Z"),
            id: 7,
        };
        let later = t("2026-11-30T09:00:00Z");
        let earlier = t("2026-11-30T07:00:00Z");
        let down = KeyRange::descending(None, Some(&later), Some(&cursor));
        assert_eq!((down.key_at.clone(), down.key_id), (cursor.at.clone(), 7));
        let down = KeyRange::descending(Some(&earlier), Some(&earlier), Some(&cursor));
        assert_eq!((down.key_at, down.key_id), (earlier.clone(), i64::MIN));
        assert_eq!(down.bound, earlier);
        let up = KeyRange::ascending(Some(&later), None, Some(&cursor));
        assert_eq!((up.key_at, up.key_id), (later, i64::MIN));
        let up = KeyRange::ascending(None, None, None);
        assert_eq!(up.key_id, i64::MIN);
        assert_eq!(up.bound.as_str(), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn an_absurd_age_is_the_beginning_of_time_not_a_panic() {
        let forever = std::time::Duration::from_secs(u64::MAX / 2);
        assert_eq!(
            Timestamp::ago(forever).as_str(),
            "0001-01-01T00:00:00.000000Z"
        );
        assert!(
            Timestamp::ago(std::time::Duration::from_secs(60))
                < Timestamp::ago(std::time::Duration::ZERO)
        );
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("500"), Ok(500));
        for bad in ["0", "501", "-1", "x", ""] {
            assert_eq!(parse_limit(bad).unwrap_err().parameter, "limit");
        }
    }
}
