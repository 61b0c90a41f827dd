//! SQLite side of the admin reads (lists, summary, stats, export, one event) and of
//! pruning. Reads run on a reader connection, in WAL mode beside the writer, after the
//! duplicate counts the writer holds are committed (so counts read are current); pruning
//! runs on the writer thread one short batch at a time, so deliveries interleave with a
//! long prune. Rows are mapped by the shared mappers in `store::rows`.

use rusqlite::params;

use super::{SqliteStore, all_rows, map_err, sql as event_sql};
use crate::model::outbox::AttemptRecord;
use crate::model::{EventId, Source, StoredConflict, StoredEvent};
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, EventListPlan, ExportFilter,
    ExportItem, KeyRange, Pruned, SourceStats, SummaryGroup, Timestamp,
};
use crate::store::rows::{self, prune_in_batches};
use crate::store::{AdminReads, PRUNE_BATCH, StoreError};

mod sql {
    pub const FORWARD_HISTORY: &str = include_str!("../../../sql/sqlite/forward_history.sql");
    pub const LIST_EVENTS: &str = include_str!("../../../sql/sqlite/list_events.sql");
    pub const LIST_EVENTS_BY_SOURCE: &str =
        include_str!("../../../sql/sqlite/list_events_by_source.sql");
    pub const LIST_EVENTS_BY_EVENT_ID: &str =
        include_str!("../../../sql/sqlite/list_events_by_event_id.sql");
    pub const LIST_EVENTS_BY_FORWARD: &str =
        include_str!("../../../sql/sqlite/list_events_by_forward.sql");
    pub const LIST_EVENTS_DUPLICATED: &str =
        include_str!("../../../sql/sqlite/list_events_duplicated.sql");
    pub const LIST_EVENTS_CONFLICTED: &str =
        include_str!("../../../sql/sqlite/list_events_conflicted.sql");
    pub const LIST_CONVERSIONS: &str = include_str!("../../../sql/sqlite/list_conversions.sql");
    pub const LIST_CONVERSIONS_BY_STATUS: &str =
        include_str!("../../../sql/sqlite/list_conversions_by_status.sql");
    pub const LIST_CONVERSIONS_BY_ORDER: &str =
        include_str!("../../../sql/sqlite/list_conversions_by_order.sql");
    pub const LIST_EVENTS_BY_TYPE: &str =
        include_str!("../../../sql/sqlite/list_events_by_type.sql");
    pub const GET_CONVERSION_BY_ID: &str =
        include_str!("../../../sql/sqlite/get_conversion_by_id.sql");
    pub const EXPORT_EVENTS: &str = include_str!("../../../sql/sqlite/export_events.sql");
    pub const PRUNE_EVENTS: &str = include_str!("../../../sql/sqlite/prune_events.sql");
    pub const PRUNE_CONFLICTS: &str = include_str!("../../../sql/sqlite/prune_conflicts.sql");
    pub const COUNT_PRUNABLE_EVENTS: &str =
        include_str!("../../../sql/sqlite/count_prunable_events.sql");
    pub const COUNT_PRUNABLE_CONFLICTS: &str =
        include_str!("../../../sql/sqlite/count_prunable_conflicts.sql");
}

impl AdminReads for SqliteStore {
    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.flush_pending_counts()?;
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(event_sql::GET_EVENT).map_err(map_err)?;
        let found = all_rows(&mut stmt, params![source.as_str(), id.as_str()], |row| {
            rows::stored_event(row)
        })?;
        Ok(found.into_iter().next())
    }

    fn conflicts(&self, source: &Source, id: &EventId) -> Result<Vec<StoredConflict>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(event_sql::LIST_CONFLICTS).map_err(map_err)?;
        all_rows(&mut stmt, params![source.as_str(), id.as_str()], |row| {
            rows::stored_conflict(row)
        })
    }

    fn list_events(
        &self,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventItem>, StoreError> {
        let statement = match filter.plan() {
            EventListPlan::ByEventId => sql::LIST_EVENTS_BY_EVENT_ID,
            EventListPlan::ByForward => sql::LIST_EVENTS_BY_FORWARD,
            EventListPlan::Duplicated => sql::LIST_EVENTS_DUPLICATED,
            EventListPlan::Conflicted => sql::LIST_EVENTS_CONFLICTED,
            EventListPlan::ByType => sql::LIST_EVENTS_BY_TYPE,
            EventListPlan::BySource => sql::LIST_EVENTS_BY_SOURCE,
            EventListPlan::ByTime => sql::LIST_EVENTS,
        };
        self.flush_pending_counts()?;
        let range = KeyRange::descending(filter.since.as_ref(), filter.until.as_ref(), after);
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(statement).map_err(map_err)?;
        all_rows(
            &mut stmt,
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
            |row| rows::event_item(row),
        )
    }

    fn list_conversions(
        &self,
        filter: &ConversionFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ConversionItem>, StoreError> {
        let range = KeyRange::descending(filter.since.as_ref(), filter.until.as_ref(), after);
        // An order id matches a few conversions at most: its own index first.
        let statement = match (&filter.order_id, &filter.status) {
            (Some(_), _) => sql::LIST_CONVERSIONS_BY_ORDER,
            (None, Some(_)) => sql::LIST_CONVERSIONS_BY_STATUS,
            (None, None) => sql::LIST_CONVERSIONS,
        };
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(statement).map_err(map_err)?;
        all_rows(
            &mut stmt,
            params![
                filter.status,
                filter.currency,
                filter.order_id,
                range.bound.as_str(),
                range.key_at.as_str(),
                range.key_id,
                i64::from(limit),
            ],
            |row| rows::conversion_item(row),
        )
    }

    fn conversion_by_id(&self, id: i64) -> Result<Option<ConversionItem>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(sql::GET_CONVERSION_BY_ID)
            .map_err(map_err)?;
        let found = all_rows(&mut stmt, params![id], |row| rows::conversion_item(row))?;
        Ok(found.into_iter().next())
    }

    /// The totals the writer keeps (migration 008): a few rows, whatever the store's size.
    fn conversion_summary(&self) -> Result<Vec<SummaryGroup>, StoreError> {
        super::totals::conversion_totals(&*self.conn()?)
    }

    fn forward_history(&self, webhook_event_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql::FORWARD_HISTORY).map_err(map_err)?;
        all_rows(&mut stmt, [webhook_event_id], |row| {
            rows::attempt_record(row)
        })
    }

    fn source_stats(&self) -> Result<Vec<SourceStats>, StoreError> {
        self.flush_pending_counts()?;
        super::totals::source_totals(&*self.conn()?)
    }

    fn export_events(
        &self,
        filter: &ExportFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ExportItem>, StoreError> {
        self.flush_pending_counts()?;
        let range = KeyRange::ascending(filter.since.as_ref(), filter.until.as_ref(), after);
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(sql::EXPORT_EVENTS).map_err(map_err)?;
        all_rows(
            &mut stmt,
            params![
                filter.source.as_ref().map(|s| s.as_str()),
                range.bound.as_str(),
                range.key_at.as_str(),
                range.key_id,
                i64::from(limit),
            ],
            |row| rows::export_item(row),
        )
    }
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
    // One batch per writer job, so queued deliveries wait for one batch at most.
    let on_writer = |statement: &'static str, batch: Option<i64>| {
        let cutoff = before.as_str().to_owned();
        store.with_writer(move |conn| {
            let cleared = match batch {
                Some(batch) => conn.execute(statement, params![cutoff, batch]),
                None => conn.execute(statement, params![cutoff]),
            };
            cleared.map(|n| n as u64).map_err(map_err)
        })
    };
    prune_in_batches(
        || on_writer(sql::PRUNE_EVENTS, Some(PRUNE_BATCH)),
        || on_writer(sql::PRUNE_CONFLICTS, None),
    )
}
