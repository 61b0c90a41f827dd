//! PostgreSQL side of the admin reads (lists, summary, stats, export, one event) and of
//! pruning. Reads that show counts first commit this instance's pending duplicate
//! counts. Every statement goes out with typed parameters as an unnamed statement, so
//! the planner sees the actual values (a NULL filter folds away) and no prepare round
//! trip is spent; timestamps come back as the same RFC 3339 text SQLite stores. Rows are
//! mapped by the shared mappers in `store::rows`.

use postgres::Row;
use postgres::types::{ToSql, Type};

use super::errors::get;
use super::{PostgresStore, sql as event_sql};
use crate::model::outbox::AttemptRecord;
use crate::model::{EventId, Source, StoredConflict, StoredEvent};
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, EventListPlan, ExportFilter,
    ExportItem, KeyRange, Pruned, SourceStats, SummaryGroup, Timestamp,
};
use crate::store::rows::{self, prune_in_batches};
use crate::store::{AdminReads, PRUNE_BATCH, StoreError};

mod sql {
    pub const FORWARD_HISTORY: &str = include_str!("../../../sql/postgres/forward_history.sql");
    pub const LIST_EVENTS: &str = include_str!("../../../sql/postgres/list_events.sql");
    pub const LIST_EVENTS_BY_SOURCE: &str =
        include_str!("../../../sql/postgres/list_events_by_source.sql");
    pub const LIST_EVENTS_BY_EVENT_ID: &str =
        include_str!("../../../sql/postgres/list_events_by_event_id.sql");
    pub const LIST_EVENTS_BY_FORWARD: &str =
        include_str!("../../../sql/postgres/list_events_by_forward.sql");
    pub const LIST_EVENTS_DUPLICATED: &str =
        include_str!("../../../sql/postgres/list_events_duplicated.sql");
    pub const LIST_EVENTS_CONFLICTED: &str =
        include_str!("../../../sql/postgres/list_events_conflicted.sql");
    pub const LIST_CONVERSIONS: &str = include_str!("../../../sql/postgres/list_conversions.sql");
    pub const LIST_CONVERSIONS_BY_STATUS: &str =
        include_str!("../../../sql/postgres/list_conversions_by_status.sql");
    pub const LIST_CONVERSIONS_BY_ORDER: &str =
        include_str!("../../../sql/postgres/list_conversions_by_order.sql");
    pub const LIST_EVENTS_BY_TYPE: &str =
        include_str!("../../../sql/postgres/list_events_by_type.sql");
    pub const GET_CONVERSION_BY_ID: &str =
        include_str!("../../../sql/postgres/get_conversion_by_id.sql");
    pub const EXPORT_EVENTS: &str = include_str!("../../../sql/postgres/export_events.sql");
    pub const PRUNE_EVENTS: &str = include_str!("../../../sql/postgres/prune_events.sql");
    pub const PRUNE_CONFLICTS: &str = include_str!("../../../sql/postgres/prune_conflicts.sql");
    pub const COUNT_PRUNABLE_EVENTS: &str =
        include_str!("../../../sql/postgres/count_prunable_events.sql");
    pub const COUNT_PRUNABLE_CONFLICTS: &str =
        include_str!("../../../sql/postgres/count_prunable_conflicts.sql");
}

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

impl KeyRange {
    /// The plain bound, the key time and the key id, ready to bind.
    fn params(&self) -> (&str, &str, i64) {
        (self.bound.as_str(), self.key_at.as_str(), self.key_id)
    }
}

impl PostgresStore {
    pub(super) fn rows(
        &self,
        statement: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        self.with_conn(|conn| conn.client.query_typed(statement, params))
    }

    fn execute(&self, statement: &str, params: &[Param<'_>]) -> Result<u64, StoreError> {
        // Unnamed, so it also works through a transaction pooler.
        self.with_conn(|conn| conn.client.execute_typed(statement, params))
    }
}

impl AdminReads for PostgresStore {
    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        self.flush_pending_counts()?;
        self.query_by_event(event_sql::GET_EVENT, source, id)?
            .first()
            .map(rows::stored_event)
            .transpose()
    }

    fn conflicts(&self, source: &Source, id: &EventId) -> Result<Vec<StoredConflict>, StoreError> {
        self.query_by_event(event_sql::LIST_CONFLICTS, source, id)?
            .iter()
            .map(rows::stored_conflict)
            .collect()
    }

    fn list_events(
        &self,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventItem>, StoreError> {
        self.flush_pending_counts()?;
        let statement = match filter.plan() {
            EventListPlan::ByEventId => sql::LIST_EVENTS_BY_EVENT_ID,
            EventListPlan::ByForward => sql::LIST_EVENTS_BY_FORWARD,
            EventListPlan::Duplicated => sql::LIST_EVENTS_DUPLICATED,
            EventListPlan::Conflicted => sql::LIST_EVENTS_CONFLICTED,
            EventListPlan::ByType => sql::LIST_EVENTS_BY_TYPE,
            EventListPlan::BySource => sql::LIST_EVENTS_BY_SOURCE,
            EventListPlan::ByTime => sql::LIST_EVENTS,
        };
        let source = filter.source.as_ref().map(|s| s.as_str());
        let range = KeyRange::descending(filter.since.as_ref(), filter.until.as_ref(), after);
        let (bound, key_at, key_id) = range.params();
        let forward = filter.forward.map(|f| f.as_str());
        let limit = i64::from(limit);
        self.rows(
            statement,
            &[
                (&source, Type::TEXT),
                (&filter.event_type, Type::TEXT),
                (&filter.event_id, Type::TEXT),
                (&bound, Type::TEXT),
                (&filter.duplicated, Type::BOOL),
                (&filter.conflicted, Type::BOOL),
                (&forward, Type::TEXT),
                (&key_at, Type::TEXT),
                (&key_id, Type::INT8),
                (&limit, Type::INT8),
            ],
        )?
        .iter()
        .map(rows::event_item)
        .collect()
    }

    fn list_conversions(
        &self,
        filter: &ConversionFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ConversionItem>, StoreError> {
        let range = KeyRange::descending(filter.since.as_ref(), filter.until.as_ref(), after);
        let (bound, key_at, key_id) = range.params();
        let limit = i64::from(limit);
        // An order id matches a few conversions at most: its own index first.
        let statement = match (&filter.order_id, &filter.status) {
            (Some(_), _) => sql::LIST_CONVERSIONS_BY_ORDER,
            (None, Some(_)) => sql::LIST_CONVERSIONS_BY_STATUS,
            (None, None) => sql::LIST_CONVERSIONS,
        };
        self.rows(
            statement,
            &[
                (&filter.status, Type::TEXT),
                (&filter.currency, Type::TEXT),
                (&filter.order_id, Type::TEXT),
                (&bound, Type::TEXT),
                (&key_at, Type::TEXT),
                (&key_id, Type::INT8),
                (&limit, Type::INT8),
            ],
        )?
        .iter()
        .map(rows::conversion_item)
        .collect()
    }

    fn conversion_by_id(&self, id: i64) -> Result<Option<ConversionItem>, StoreError> {
        self.rows(sql::GET_CONVERSION_BY_ID, &[(&id, Type::INT8)])?
            .first()
            .map(rows::conversion_item)
            .transpose()
    }

    /// The totals kept as events arrive (migration 008): a few rows, whatever the size.
    fn conversion_summary(&self) -> Result<Vec<SummaryGroup>, StoreError> {
        self.conversion_totals()
    }

    fn forward_history(&self, webhook_event_id: i64) -> Result<Vec<AttemptRecord>, StoreError> {
        self.rows(sql::FORWARD_HISTORY, &[(&webhook_event_id, Type::INT8)])?
            .iter()
            .map(rows::attempt_record)
            .collect()
    }

    fn source_stats(&self) -> Result<Vec<SourceStats>, StoreError> {
        self.source_totals()
    }

    fn export_events(
        &self,
        filter: &ExportFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ExportItem>, StoreError> {
        self.flush_pending_counts()?;
        let source = filter.source.as_ref().map(|s| s.as_str());
        let range = KeyRange::ascending(filter.since.as_ref(), filter.until.as_ref(), after);
        let (bound, key_at, key_id) = range.params();
        let limit = i64::from(limit);
        self.rows(
            sql::EXPORT_EVENTS,
            &[
                (&source, Type::TEXT),
                (&bound, Type::TEXT),
                (&key_at, Type::TEXT),
                (&key_id, Type::INT8),
                (&limit, Type::INT8),
            ],
        )?
        .iter()
        .map(rows::export_item)
        .collect()
    }
}

pub(super) fn prune_payloads(
    store: &PostgresStore,
    before: &Timestamp,
    dry_run: bool,
) -> Result<Pruned, StoreError> {
    store.flush_pending_counts()?;
    let before = before.as_str();
    if dry_run {
        let count = |statement: &str| -> Result<u64, StoreError> {
            let rows = store.rows(statement, &[(&before, Type::TEXT)])?;
            let row = rows
                .first()
                .ok_or_else(|| StoreError::Internal("count returned no row".into()))?;
            Ok(get::<i64>(row, 0)?.max(0) as u64)
        };
        return Ok(Pruned {
            events: count(sql::COUNT_PRUNABLE_EVENTS)?,
            conflicts: count(sql::COUNT_PRUNABLE_CONFLICTS)?,
        });
    }
    prune_in_batches(
        || {
            store.execute(
                sql::PRUNE_EVENTS,
                &[(&before, Type::TEXT), (&PRUNE_BATCH, Type::INT8)],
            )
        },
        || store.execute(sql::PRUNE_CONFLICTS, &[(&before, Type::TEXT)]),
    )
}
