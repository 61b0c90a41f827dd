//! The totals on PostgreSQL (migration 008). Every change to the rows inserts delta rows
//! in its own transaction (the triggers of migration 008), so instances never queue on a
//! hot totals row; each instance's flusher folds the deltas into `source_totals` and
//! `conversion_totals` about once a second ([`fold`]), one instance at a time under an
//! advisory lock; reads add the folded totals and the deltas not folded yet.

use postgres::error::SqlState;
use postgres::{IsolationLevel, Row};

use super::{PgConn, PostgresStore};
use crate::read::{SourceStats, SummaryGroup, TotalsCheck, sort_groups};
use crate::store::{StoreError, rows};

pub(super) mod sql {
    pub const SOURCE_TOTALS: &str = include_str!("../../../sql/postgres/source_totals.sql");
    pub const CONVERSION_TOTALS: &str = include_str!("../../../sql/postgres/conversion_totals.sql");
    pub const SOURCE_STATS: &str = include_str!("../../../sql/postgres/source_stats.sql");
    pub const CONVERSION_SUMMARY: &str =
        include_str!("../../../sql/postgres/conversion_summary.sql");
    pub const FOLD_SOURCE_TOTALS: &str =
        include_str!("../../../sql/postgres/fold_source_totals.sql");
    pub const FOLD_CONVERSION_TOTALS: &str =
        include_str!("../../../sql/postgres/fold_conversion_totals.sql");
    pub const TOTALS_LOCK: &str = include_str!("../../../sql/postgres/totals_lock.sql");
    pub const TOTALS_WAIT_LOCK: &str = include_str!("../../../sql/postgres/totals_wait_lock.sql");
    pub const RECOMPUTE_TOTALS: &str = include_str!("../../../sql/postgres/recompute_totals.sql");
}

/// Key of the transaction advisory lock folds and rebuilds take ("hltotals").
const TOTALS_LOCK: i64 = 0x686c_746f_7461_6c73;

/// Folds the deltas into the totals, unless another instance is folding right now (its
/// fold takes these deltas along, or the next one does).
pub(super) fn fold(conn: &mut PgConn) -> Result<(), postgres::Error> {
    let mut tx = conn.client.transaction()?;
    let locked: bool = tx
        .query_one(sql::TOTALS_LOCK, &[&TOTALS_LOCK])?
        .try_get(0)?;
    if locked {
        tx.execute(sql::FOLD_SOURCE_TOTALS, &[])?;
        tx.execute(sql::FOLD_CONVERSION_TOTALS, &[])?;
    }
    tx.commit()
}

/// Tries of a rebuild that lost its snapshot to a fold (see `recompute_totals_now`).
const RECOMPUTE_ATTEMPTS: u32 = 5;

/// The totals rebuilt from the rows in one snapshot (sql/postgres/recompute_totals.sql).
fn recompute(conn: &mut PgConn) -> Result<(), postgres::Error> {
    let mut tx = conn
        .client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .start()?;
    tx.query_one(sql::TOTALS_WAIT_LOCK, &[&TOTALS_LOCK])?;
    tx.batch_execute(sql::RECOMPUTE_TOTALS)?;
    tx.commit()
}

impl PostgresStore {
    pub(super) fn source_totals(&self) -> Result<Vec<SourceStats>, StoreError> {
        self.flush_pending_counts()?;
        self.rows(sql::SOURCE_TOTALS, &[])?
            .iter()
            .map(rows::source_stats)
            .collect()
    }

    pub(super) fn conversion_totals(&self) -> Result<Vec<SummaryGroup>, StoreError> {
        let mut groups = self
            .rows(sql::CONVERSION_TOTALS, &[])?
            .iter()
            .map(rows::summary_group)
            .collect::<Result<Vec<_>, StoreError>>()?;
        sort_groups(&mut groups);
        Ok(groups)
    }

    /// Folds the deltas now (the flusher does it about once a second).
    pub fn fold_totals(&self) -> Result<(), StoreError> {
        self.with_conn(fold)
    }

    pub(super) fn recompute_totals_now(&self) -> Result<(), StoreError> {
        self.flush_pending_counts()?;
        self.with_conn(|conn| {
            let mut attempt = 1;
            loop {
                match recompute(conn) {
                    // The snapshot is taken before the lock is granted: a fold that
                    // committed in between makes the rebuild's deletes fail to
                    // serialize. Folds are brief and the lock is now held, so again.
                    Err(e)
                        if attempt < RECOMPUTE_ATTEMPTS
                            && e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) =>
                    {
                        attempt += 1;
                    }
                    done => return done,
                }
            }
        })
    }

    pub(super) fn verify_totals_now(&self) -> Result<TotalsCheck, StoreError> {
        self.flush_pending_counts()?;
        let [kept_sources, kept_groups, sources, groups] = self.with_conn(|conn| {
            // One snapshot for the kept totals and the recount: a delta commits with its
            // rows.
            let mut tx = conn
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()?;
            let mut read = |statement: &str| tx.query(statement, &[]);
            let rows = [
                read(sql::SOURCE_TOTALS)?,
                read(sql::CONVERSION_TOTALS)?,
                read(sql::SOURCE_STATS)?,
                read(sql::CONVERSION_SUMMARY)?,
            ];
            tx.commit()?;
            Ok(rows)
        })?;
        let sources_of = |found: &[Row]| -> Result<Vec<SourceStats>, StoreError> {
            found.iter().map(rows::source_stats).collect()
        };
        let groups_of = |found: &[Row]| -> Result<Vec<SummaryGroup>, StoreError> {
            let mut groups = found
                .iter()
                .map(rows::summary_group)
                .collect::<Result<Vec<_>, StoreError>>()?;
            sort_groups(&mut groups);
            Ok(groups)
        };
        Ok(TotalsCheck::compare(
            (&sources_of(&sources)?, &groups_of(&groups)?),
            (&sources_of(&kept_sources)?, &groups_of(&kept_groups)?),
        ))
    }
}
