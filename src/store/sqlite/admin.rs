//! SQLite side of the admin read verbs (lists, summary, stats, export) and pruning. Reads
//! run on a reader connection, in WAL mode beside the writer, after the duplicate counts
//! the writer holds are committed (so counts read are current); pruning runs on the
//! writer thread one short batch at a time, so deliveries interleave with a long prune.

use std::collections::BTreeMap;

use rusqlite::{OptionalExtension, Row, params};
use rust_decimal::Decimal;

use super::{SqliteStore, map_err, sql as event_sql};
use crate::model::{EventId, Source, StoredConflict, StoredEvent};
use crate::read::KeyRange;
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, EventListPlan, ExportFilter,
    ExportItem, ForwardInfo, Pruned, SourceStats, SummaryGroup, Timestamp, payload_value,
    sort_groups,
};
use crate::store::{AdminReads, PRUNE_BATCH, StoreError};

mod sql {
    pub const LIST_EVENTS: &str = include_str!("../../../sql/sqlite/list_events.sql");
    pub const LIST_EVENTS_BY_SOURCE: &str =
        include_str!("../../../sql/sqlite/list_events_by_source.sql");
    pub const LIST_EVENTS_BY_EVENT_ID: &str =
        include_str!("../../../sql/sqlite/list_events_by_event_id.sql");
    pub const LIST_EVENTS_BY_FORWARD: &str =
        include_str!("../../../sql/sqlite/list_events_by_forward.sql");
    pub const LIST_CONVERSIONS: &str = include_str!("../../../sql/sqlite/list_conversions.sql");
    pub const GET_CONVERSION_BY_ID: &str =
        include_str!("../../../sql/sqlite/get_conversion_by_id.sql");
    pub const CONVERSION_SUMMARY: &str = include_str!("../../../sql/sqlite/conversion_summary.sql");
    pub const SOURCE_STATS: &str = include_str!("../../../sql/sqlite/source_stats.sql");
    pub const EXPORT_EVENTS: &str = include_str!("../../../sql/sqlite/export_events.sql");
    pub const PRUNE_EVENTS: &str = include_str!("../../../sql/sqlite/prune_events.sql");
    pub const PRUNE_CONFLICTS: &str = include_str!("../../../sql/sqlite/prune_conflicts.sql");
    pub const COUNT_PRUNABLE_EVENTS: &str =
        include_str!("../../../sql/sqlite/count_prunable_events.sql");
    pub const COUNT_PRUNABLE_CONFLICTS: &str =
        include_str!("../../../sql/sqlite/count_prunable_conflicts.sql");
}

pub(super) fn list_events(
    store: &SqliteStore,
    filter: &EventFilter,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<EventItem>, StoreError> {
    let statement = match filter.plan() {
        EventListPlan::ByEventId => sql::LIST_EVENTS_BY_EVENT_ID,
        EventListPlan::ByForward => sql::LIST_EVENTS_BY_FORWARD,
        EventListPlan::BySource => sql::LIST_EVENTS_BY_SOURCE,
        EventListPlan::ByTime => sql::LIST_EVENTS,
    };
    store.flush_pending_counts()?;
    let range = KeyRange::descending(filter.since.as_ref(), filter.until.as_ref(), after);
    let conn = store.conn()?;
    let mut stmt = conn.prepare_cached(statement).map_err(map_err)?;
    let rows = stmt
        .query_map(
            params![
                filter.source.as_ref().map(|s| s.as_str()),
                filter.event_type,
                filter.event_id,
                range.bound.as_str(),
                filter.duplicated,
                filter.conflicted,
                filter.forward.map(|f| f.as_str()),
                range.key_at.as_str(),
                range.key_id,
                i64::from(limit),
            ],
            event_item,
        )
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

fn event_item(row: &Row) -> rusqlite::Result<EventItem> {
    let state: Option<String> = row.get(9)?;
    let forward = match state {
        None => None,
        Some(state) => Some(ForwardInfo {
            state,
            attempts: row.get(10)?,
            last_status: row.get(11)?,
            last_error: row.get(12)?,
            next_attempt_at: row.get(13)?,
            delivered_at: row.get(14)?,
        }),
    };
    Ok(EventItem {
        webhook_event_id: row.get(0)?,
        source: row.get(1)?,
        event_id: row.get(2)?,
        event_type: row.get(3)?,
        conversion_id: row.get(4)?,
        delivery_count: row.get(5)?,
        conflict_count: row.get(6)?,
        first_seen_at: row.get(7)?,
        last_seen_at: row.get(8)?,
        forward,
    })
}

pub(super) fn list_conversions(
    store: &SqliteStore,
    filter: &ConversionFilter,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<ConversionItem>, StoreError> {
    let range = KeyRange::descending(filter.since.as_ref(), filter.until.as_ref(), after);
    let conn = store.conn()?;
    let mut stmt = conn
        .prepare_cached(sql::LIST_CONVERSIONS)
        .map_err(map_err)?;
    let rows = stmt
        .query_map(
            params![
                filter.status,
                filter.currency,
                filter.order_id,
                range.bound.as_str(),
                range.key_at.as_str(),
                range.key_id,
                i64::from(limit),
            ],
            conversion_item,
        )
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(super) fn conversion_by_id(
    store: &SqliteStore,
    id: i64,
) -> Result<Option<ConversionItem>, StoreError> {
    let conn = store.conn()?;
    conn.query_row(sql::GET_CONVERSION_BY_ID, params![id], conversion_item)
        .optional()
        .map_err(map_err)
}

fn conversion_item(row: &Row) -> rusqlite::Result<ConversionItem> {
    Ok(ConversionItem {
        conversion_id: row.get(0)?,
        source: row.get(1)?,
        external_conversion_id: row.get(2)?,
        event_id: row.get(3)?,
        order_id: row.get(4)?,
        sale_amount: row.get(5)?,
        commission_amount: row.get(6)?,
        currency: row.get(7)?,
        status: row.get(8)?,
        affiliate_id: row.get(9)?,
        affiliate_code: row.get(10)?,
        tracking_id: row.get(11)?,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
    })
}

pub(super) fn conversion_summary(store: &SqliteStore) -> Result<Vec<SummaryGroup>, StoreError> {
    type Key = (Option<String>, Option<String>);
    let conn = store.conn()?;
    let mut stmt = conn
        .prepare_cached(sql::CONVERSION_SUMMARY)
        .map_err(map_err)?;
    let mut rows = stmt.query([]).map_err(map_err)?;
    let mut groups: BTreeMap<Key, (i64, Decimal, Decimal)> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let key: Key = (row.get(0).map_err(map_err)?, row.get(1).map_err(map_err)?);
        let sale = decimal(row.get(2).map_err(map_err)?)?;
        let commission = decimal(row.get(3).map_err(map_err)?)?;
        let group = groups.entry(key).or_default();
        group.0 += 1;
        group.1 += sale;
        group.2 += commission;
    }
    let mut groups: Vec<SummaryGroup> = groups
        .into_iter()
        .map(
            |((status, currency), (count, sale, commission))| SummaryGroup {
                status,
                currency,
                count,
                sale_amount: sale.to_string(),
                commission_amount: commission.to_string(),
            },
        )
        .collect();
    sort_groups(&mut groups);
    Ok(groups)
}

fn decimal(text: String) -> Result<Decimal, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Internal(format!("stored amount {text:?}: {e}")))
}

pub(super) fn source_stats(store: &SqliteStore) -> Result<Vec<SourceStats>, StoreError> {
    store.flush_pending_counts()?;
    let conn = store.conn()?;
    let mut stmt = conn.prepare_cached(sql::SOURCE_STATS).map_err(map_err)?;
    let rows = stmt
        .query_map([], |row| {
            let events: i64 = row.get(1)?;
            let deliveries: i64 = row.get(2)?;
            Ok(SourceStats {
                source: row.get(0)?,
                events,
                deliveries,
                duplicates: deliveries - events,
                conflicts: row.get(3)?,
                last_seen_at: row.get(4)?,
            })
        })
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(super) fn export_events(
    store: &SqliteStore,
    filter: &ExportFilter,
    after: Option<&Cursor>,
    limit: u32,
) -> Result<Vec<ExportItem>, StoreError> {
    store.flush_pending_counts()?;
    let range = KeyRange::ascending(filter.since.as_ref(), filter.until.as_ref(), after);
    let conn = store.conn()?;
    let mut stmt = conn.prepare_cached(sql::EXPORT_EVENTS).map_err(map_err)?;
    let rows = stmt
        .query_map(
            params![
                filter.source.as_ref().map(|s| s.as_str()),
                range.bound.as_str(),
                range.key_at.as_str(),
                range.key_id,
                i64::from(limit),
            ],
            |row| {
                let payload: Option<String> = row.get(4)?;
                Ok(ExportItem {
                    webhook_event_id: row.get(0)?,
                    source: row.get(1)?,
                    event_id: row.get(2)?,
                    event_type: row.get(3)?,
                    payload: payload_value(payload.as_deref()),
                    first_seen_at: row.get(5)?,
                    last_seen_at: row.get(6)?,
                    delivery_count: row.get(7)?,
                })
            },
        )
        .map_err(map_err)?;
    rows.collect::<Result<_, _>>().map_err(map_err)
}

pub(super) fn prune_payloads(
    store: &SqliteStore,
    before: &Timestamp,
    dry_run: bool,
) -> Result<Pruned, StoreError> {
    // Pending duplicate counts move last_seen_at; commit them before judging age.
    store.flush_pending_counts()?;
    if dry_run {
        let conn = store.conn()?;
        let count = |statement: &str| -> Result<u64, StoreError> {
            conn.query_row(statement, params![before.as_str()], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .map_err(map_err)
        };
        return Ok(Pruned {
            events: count(sql::COUNT_PRUNABLE_EVENTS)?,
            conflicts: count(sql::COUNT_PRUNABLE_CONFLICTS)?,
        });
    }
    let mut pruned = Pruned::default();
    loop {
        // One batch per writer job, so queued deliveries wait for one batch at most.
        let cutoff = before.as_str().to_owned();
        let cleared = store.with_writer(move |conn| {
            conn.execute(sql::PRUNE_EVENTS, params![cutoff, PRUNE_BATCH])
                .map_err(map_err)
        })?;
        pruned.events += cleared as u64;
        if (cleared as i64) < PRUNE_BATCH {
            break;
        }
    }
    let cutoff = before.as_str().to_owned();
    pruned.conflicts = store.with_writer(move |conn| {
        conn.execute(sql::PRUNE_CONFLICTS, params![cutoff])
            .map_err(map_err)
    })? as u64;
    Ok(pruned)
}

impl AdminReads for SqliteStore {
    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.flush_pending_counts()?;
        let conn = self.conn()?;
        conn.query_row(
            event_sql::GET_EVENT,
            params![source.as_str(), id.as_str()],
            |row| {
                Ok(StoredEvent {
                    id: row.get(0)?,
                    source: row.get(1)?,
                    external_event_id: row.get(2)?,
                    event_type: row.get(3)?,
                    payload: row.get(4)?,
                    fingerprint: row.get(5)?,
                    conversion_id: row.get(6)?,
                    delivery_count: row.get(7)?,
                    conflict_count: row.get(8)?,
                    first_seen_at: row.get(9)?,
                    last_seen_at: row.get(10)?,
                })
            },
        )
        .optional()
        .map_err(map_err)
    }

    fn conflicts(&self, source: &Source, id: &EventId) -> Result<Vec<StoredConflict>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(event_sql::LIST_CONFLICTS).map_err(map_err)?;
        let rows = stmt
            .query_map(params![source.as_str(), id.as_str()], |row| {
                Ok(StoredConflict {
                    id: row.get(0)?,
                    webhook_event_id: row.get(1)?,
                    fingerprint: row.get(2)?,
                    payload: row.get(3)?,
                    received_at: row.get(4)?,
                })
            })
            .map_err(map_err)?;
        rows.collect::<Result<_, _>>().map_err(map_err)
    }

    fn list_events(
        &self,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventItem>, StoreError> {
        list_events(self, filter, after, limit)
    }

    fn list_conversions(
        &self,
        filter: &ConversionFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ConversionItem>, StoreError> {
        list_conversions(self, filter, after, limit)
    }

    fn conversion_by_id(&self, id: i64) -> Result<Option<ConversionItem>, StoreError> {
        conversion_by_id(self, id)
    }

    fn conversion_summary(&self) -> Result<Vec<SummaryGroup>, StoreError> {
        conversion_summary(self)
    }

    fn source_stats(&self) -> Result<Vec<SourceStats>, StoreError> {
        source_stats(self)
    }

    fn export_events(
        &self,
        filter: &ExportFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ExportItem>, StoreError> {
        export_events(self, filter, after, limit)
    }
}
