//! Duplicate deliveries counted in memory and committed in batches, on both stores.
//!
//! A duplicate is the hot path of a provider's retry storm. Rewriting the event row for
//! every retry (its payload included, on PostgreSQL) costs a write, a row lock and, on
//! SQLite, the writer's attention; the count itself is bookkeeping about an event that
//! is already durable. So each backend answers a duplicate from a read, adds it here,
//! and commits what accumulated a few milliseconds later in one statement. A crash may
//! lose those last counts, never an event. Reads of an event flush first, so a count is
//! visible to the process that counted it as soon as it answered.

use std::collections::HashMap;

use parking_lot::Mutex;

/// How long counts may wait before they are committed.
pub const FLUSH_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// After a failed commit, the next try comes after [`RETRY_FIRST`], doubling up to
/// [`RETRY_MAX`] while the store keeps refusing. Nothing else would wake the committer:
/// counts left pending after a failure make every later count look like one more in an
/// existing batch. The cap keeps SPEC §1.5's promise, a direct reader sees a count within
/// 1 s of the store accepting writes again.
pub const RETRY_FIRST: std::time::Duration = std::time::Duration::from_millis(50);
pub const RETRY_MAX: std::time::Duration = std::time::Duration::from_millis(400);

/// The wait before the next try, after one that waited `last` (`None`: the first).
pub fn next_retry(last: Option<std::time::Duration>) -> std::time::Duration {
    last.map_or(RETRY_FIRST, |last| (last * 2).min(RETRY_MAX))
}

/// Duplicate deliveries not yet committed: per event row, how many, and the last time.
#[derive(Default)]
pub struct Counts(Mutex<HashMap<i64, (i64, String)>>);

impl Counts {
    /// Returns true when this is the first pending count (the writer must be woken).
    pub fn add(&self, id: i64, at: String) -> bool {
        let mut pending = self.0.lock();
        let was_empty = pending.is_empty();
        let entry = pending.entry(id).or_insert((0, String::new()));
        entry.0 += 1;
        entry.1 = at;
        was_empty
    }

    pub fn is_empty(&self) -> bool {
        self.0.lock().is_empty()
    }

    pub fn take(&self) -> HashMap<i64, (i64, String)> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Puts counts back after a failed commit, so a passing fault does not lose them.
    pub fn restore(&self, counts: HashMap<i64, (i64, String)>) {
        let mut pending = self.0.lock();
        for (id, (n, at)) in counts {
            let entry = pending.entry(id).or_insert((0, String::new()));
            entry.0 += n;
            if at > entry.1 {
                entry.1 = at;
            }
        }
    }
}
