//! Row mapping written once for both backends. Each backend reads its result rows
//! through [`Columns`]; the mappers below turn a row into the shared read types, so the
//! column order of a statement is stated in one place for both dialects (the SQL of
//! each backend keeps that order).

use crate::model::outbox::{AttemptRecord, ForwardInfo, SourceForwarding};
use crate::model::{StoredConflict, StoredEvent};
use crate::read::{
    ConversionItem, EventItem, ExportItem, Pruned, SourceStats, SummaryGroup, payload_value,
};
use crate::store::{PRUNE_BATCH, StoreError};

/// A result row of either backend, read by column index. Integers of any width come
/// back as `i64` (PostgreSQL's outbox counters are `int4`, SQLite has one integer type).
pub(crate) trait Columns {
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError>;
    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError>;

    fn int(&self, index: usize) -> Result<i64, StoreError> {
        self.opt_int(index)?.ok_or_else(|| null(index))
    }

    fn text(&self, index: usize) -> Result<String, StoreError> {
        self.opt_text(index)?.ok_or_else(|| null(index))
    }
}

fn null(index: usize) -> StoreError {
    StoreError::Internal(format!("column {index}: unexpected NULL"))
}

/// `get_event.sql`.
pub(crate) fn stored_event(row: &impl Columns) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: row.int(0)?,
        source: row.text(1)?,
        external_event_id: row.text(2)?,
        event_type: row.opt_text(3)?,
        payload: row.opt_text(4)?,
        fingerprint: row.text(5)?,
        conversion_id: row.opt_int(6)?,
        delivery_count: row.int(7)?,
        conflict_count: row.int(8)?,
        first_seen_at: row.text(9)?,
        last_seen_at: row.text(10)?,
    })
}

/// `list_conflicts.sql`.
pub(crate) fn stored_conflict(row: &impl Columns) -> Result<StoredConflict, StoreError> {
    Ok(StoredConflict {
        id: row.int(0)?,
        webhook_event_id: row.int(1)?,
        fingerprint: row.text(2)?,
        payload: row.opt_text(3)?,
        received_at: row.text(4)?,
    })
}

/// The six outbox columns starting at `first` (state, attempts, last status, last
/// error, next attempt, delivered at); `None` when the state is NULL (no entry).
pub(crate) fn forward_info(
    row: &impl Columns,
    first: usize,
) -> Result<Option<ForwardInfo>, StoreError> {
    let Some(state) = row.opt_text(first)? else {
        return Ok(None);
    };
    Ok(Some(ForwardInfo {
        state,
        attempts: row.int(first + 1)?,
        last_status: row.opt_int(first + 2)?,
        last_error: row.opt_text(first + 3)?,
        next_attempt_at: row.opt_text(first + 4)?,
        delivered_at: row.opt_text(first + 5)?,
        history: None,
    }))
}

/// `forward_history.sql`.
pub(crate) fn attempt_record(row: &impl Columns) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        at: row.text(0)?,
        status: row.opt_int(1)?,
        duration_ms: row.int(2)?,
        error: row.opt_text(3)?,
        response: row.opt_text(4)?,
    })
}

/// `forwarding_sources.sql`.
pub(crate) fn source_forwarding(row: &impl Columns) -> Result<SourceForwarding, StoreError> {
    Ok(SourceForwarding {
        source: row.text(0)?,
        consecutive_failures: row.int(1)?,
        paused_at: row.opt_text(2)?,
        last_error: row.opt_text(3)?,
        pending: row.int(4)?,
        failed: row.int(5)?,
    })
}

/// `list_events*.sql`.
pub(crate) fn event_item(row: &impl Columns) -> Result<EventItem, StoreError> {
    Ok(EventItem {
        webhook_event_id: row.int(0)?,
        source: row.text(1)?,
        event_id: row.text(2)?,
        event_type: row.opt_text(3)?,
        conversion_id: row.opt_int(4)?,
        delivery_count: row.int(5)?,
        conflict_count: row.int(6)?,
        first_seen_at: row.text(7)?,
        last_seen_at: row.text(8)?,
        forward: forward_info(row, 9)?,
    })
}

/// `list_conversions.sql`, `get_conversion_by_id.sql`.
pub(crate) fn conversion_item(row: &impl Columns) -> Result<ConversionItem, StoreError> {
    Ok(ConversionItem {
        conversion_id: row.int(0)?,
        source: row.text(1)?,
        external_conversion_id: row.opt_text(2)?,
        event_id: row.text(3)?,
        order_id: row.opt_text(4)?,
        sale_amount: row.text(5)?,
        commission_amount: row.text(6)?,
        currency: row.opt_text(7)?,
        status: row.opt_text(8)?,
        affiliate_id: row.opt_text(9)?,
        affiliate_code: row.opt_text(10)?,
        tracking_id: row.opt_text(11)?,
        created_at: row.text(12)?,
        updated_at: row.text(13)?,
    })
}

/// `source_stats.sql`.
pub(crate) fn source_stats(row: &impl Columns) -> Result<SourceStats, StoreError> {
    let events = row.int(1)?;
    let deliveries = row.int(2)?;
    Ok(SourceStats {
        source: row.text(0)?,
        events,
        deliveries,
        duplicates: deliveries - events,
        conflicts: row.int(3)?,
        last_seen_at: row.text(4)?,
    })
}

/// `conversion_totals.sql`, `conversion_summary.sql` (PostgreSQL; SQLite sums in Rust).
pub(crate) fn summary_group(row: &impl Columns) -> Result<SummaryGroup, StoreError> {
    Ok(SummaryGroup {
        status: row.opt_text(0)?,
        currency: row.opt_text(1)?,
        count: row.int(2)?,
        sale_amount: row.text(3)?,
        commission_amount: row.text(4)?,
    })
}

/// `export_events.sql`.
pub(crate) fn export_item(row: &impl Columns) -> Result<ExportItem, StoreError> {
    Ok(ExportItem {
        webhook_event_id: row.int(0)?,
        source: row.text(1)?,
        event_id: row.text(2)?,
        event_type: row.opt_text(3)?,
        payload: payload_value(row.opt_text(4)?.as_deref()),
        first_seen_at: row.text(5)?,
        last_seen_at: row.text(6)?,
        delivery_count: row.int(7)?,
    })
}

/// The prune loop of both backends: event payloads in batches of [`PRUNE_BATCH`] (each
/// its own short transaction, so deliveries interleave with a long prune) until a batch
/// comes back short, then the conflicts' payloads in one statement.
pub(crate) fn prune_in_batches(
    mut events_batch: impl FnMut() -> Result<u64, StoreError>,
    conflicts: impl FnOnce() -> Result<u64, StoreError>,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    loop {
        let cleared = events_batch()?;
        pruned.events += cleared;
        if (cleared as i64) < PRUNE_BATCH {
            break;
        }
    }
    pruned.conflicts = conflicts()?;
    Ok(pruned)
}
