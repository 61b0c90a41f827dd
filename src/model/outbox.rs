//! The forwarding outbox's data (SPEC §6): entries claimed for an attempt, an attempt's
//! outcome, one entry's state and the backlog. Plain data below both the store (which
//! keeps it) and the forward worker (which drains it), so neither imports the other.

use std::time::Duration;

use serde::Serialize;

/// An outbox entry leased to one worker for one attempt, with what it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardJob {
    pub webhook_event_id: i64,
    pub source: String,
    pub event_id: String,
    pub event_type: Option<String>,
    /// The body exactly as received; `None` once pruned (nothing left to send).
    pub payload: Option<String>,
    /// Attempts already recorded before this one.
    pub attempts: u32,
}

/// How one attempt ended, as the store records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// A 2xx within the timeout: state `delivered`.
    Delivered { status: u16 },
    /// Anything else: stays `pending`, due again after `retry_in`; or, when `retry_in`
    /// is `None` (the last allowed attempt), state `failed`.
    Failed {
        status: Option<u16>,
        error: String,
        retry_in: Option<Duration>,
    },
}

/// One event's forwarding state, for the admin API, the console, the event lists and
/// tests (`null` in JSON when the event has no outbox entry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ForwardInfo {
    /// `pending`, `delivered` or `failed` (a [`ForwardStatus`] as text).
    pub state: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    /// RFC 3339 UTC, like every stored timestamp.
    pub next_attempt_at: Option<String>,
    pub delivered_at: Option<String>,
    /// The kept attempts, newest first: filled for one event's detail only (SPEC §6.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<Vec<AttemptRecord>>,
}

/// At most this many attempts are kept per event, the newest (SPEC §6.1).
pub const HISTORY_KEPT: u32 = 20;
/// At most this many bytes of an answer's body are kept per attempt.
pub const RESPONSE_KEPT: usize = 1024;

/// One attempt as the worker reports it to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptReport {
    pub outcome: AttemptOutcome,
    /// When the attempt started, as stored (RFC 3339 UTC, microseconds).
    pub at: String,
    pub duration_ms: i64,
    /// The first [`RESPONSE_KEPT`] bytes of the answer's body, as text; `None` without
    /// an answer.
    pub response: Option<String>,
    /// The source pauses after this many consecutive failed attempts.
    pub pause_after: u32,
}

impl AttemptReport {
    /// An attempt with no timing, body or pause (tests, tools).
    pub fn of(outcome: AttemptOutcome) -> AttemptReport {
        AttemptReport {
            outcome,
            at: crate::model::clock::now_text(),
            duration_ms: 0,
            response: None,
            pause_after: u32::MAX,
        }
    }
}

/// One kept attempt, as the event detail shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    pub at: String,
    /// `None` when no answer came (timeout, refused connection).
    pub status: Option<i64>,
    pub duration_ms: i64,
    pub error: Option<String>,
    pub response: Option<String>,
}

/// A source whose forwarding was just paused or resumed: what its alert says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceChange {
    pub source: String,
    pub consecutive_failures: i64,
    pub last_error: Option<String>,
}

/// One source's forwarding, as `GET /admin/api/forwarding` lists it (without its
/// destination, which is configuration, not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceForwarding {
    pub source: String,
    pub consecutive_failures: i64,
    /// Set while paused.
    pub paused_at: Option<String>,
    #[serde(skip)]
    pub last_error: Option<String>,
    pub pending: i64,
    pub failed: i64,
}

impl SourceForwarding {
    /// `active` or `paused`.
    pub fn state(&self) -> &'static str {
        if self.paused_at.is_some() {
            "paused"
        } else {
            "active"
        }
    }
}

/// A forwarding status, as stored in `forward_outbox.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForwardStatus {
    Pending,
    Delivered,
    Failed,
}

// Parsed as a filter value in `read` (`ForwardStatus::parse`), where filter errors live.
impl ForwardStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ForwardStatus::Pending => "pending",
            ForwardStatus::Delivered => "delivered",
            ForwardStatus::Failed => "failed",
        }
    }
}

/// The outbox at a glance: what an operator alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct ForwardBacklog {
    pub pending: i64,
    pub failed: i64,
    /// Seconds since the oldest pending entry was queued; `None` when nothing is pending.
    pub oldest_pending_secs: Option<f64>,
    /// Sources whose forwarding is paused.
    pub paused_sources: i64,
}
