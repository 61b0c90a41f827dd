//! The totals on SQLite (migration 008): what each writer batch changed, added to
//! `source_totals` and `conversion_totals` in the batch's own transaction, one row per
//! source and per (status, currency) group however many events the batch held; the
//! recount `verify-totals` compares them with; and the rebuild.
//!
//! Amounts are decimal text, and SQLite has no exact decimal type, so group sums are
//! read, added in Rust and written back: only the writer thread writes them, inside its
//! `BEGIN IMMEDIATE` transaction, so nothing changes them in between.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, OptionalExtension, params};
use rust_decimal::Decimal;

use super::{SqliteStore, all_rows, map_err};
use crate::read::{SourceStats, SummaryGroup, TotalsCheck, sort_groups};
use crate::store::{StoreError, rows};

mod sql {
    pub const SOURCE_TOTALS: &str = include_str!("../../../sql/sqlite/source_totals.sql");
    pub const CONVERSION_TOTALS: &str = include_str!("../../../sql/sqlite/conversion_totals.sql");
    pub const ADD_SOURCE_TOTALS: &str = include_str!("../../../sql/sqlite/add_source_totals.sql");
    pub const FIND_CONVERSION_TOTAL: &str =
        include_str!("../../../sql/sqlite/find_conversion_total.sql");
    pub const UPDATE_CONVERSION_TOTAL: &str =
        include_str!("../../../sql/sqlite/update_conversion_total.sql");
    pub const INSERT_CONVERSION_TOTAL: &str =
        include_str!("../../../sql/sqlite/insert_conversion_total.sql");
    pub const DELETE_CONVERSION_TOTAL: &str =
        include_str!("../../../sql/sqlite/delete_conversion_total.sql");
    pub const RECOMPUTE_SOURCE_TOTALS: &str =
        include_str!("../../../sql/sqlite/recompute_source_totals.sql");
    pub const ANY_CONVERSION_TOTALS_MISSING: &str =
        include_str!("../../../sql/sqlite/any_conversion_totals_missing.sql");
    pub const SOURCE_STATS: &str = include_str!("../../../sql/sqlite/source_stats.sql");
    pub const CONVERSION_SUMMARY: &str = include_str!("../../../sql/sqlite/conversion_summary.sql");
}

type GroupKey = (Option<String>, Option<String>);

/// A conversion's place in the totals: its group and its amounts.
pub(super) struct Counted {
    pub status: Option<String>,
    pub currency: Option<String>,
    pub sale_amount: String,
    pub commission_amount: String,
}

#[derive(Default)]
struct SourceDelta {
    events: i64,
    deliveries: i64,
    conflicts: i64,
    last_seen_at: String,
}

/// What some deliveries changed, not yet written.
#[derive(Default)]
pub(super) struct Delta {
    sources: HashMap<String, SourceDelta>,
    groups: HashMap<GroupKey, (i64, Decimal, Decimal)>,
}

impl Delta {
    /// `n` deliveries of one event of `source`, at `at`: its first (`new`), or repeats,
    /// of which `conflicts` were conflicts.
    pub fn deliveries(&mut self, source: &str, new: bool, n: i64, conflicts: i64, at: &str) {
        let entry = match self.sources.get_mut(source) {
            Some(entry) => entry,
            None => self.sources.entry(source.to_owned()).or_default(),
        };
        entry.events += i64::from(new);
        entry.deliveries += n;
        entry.conflicts += conflicts;
        if at > entry.last_seen_at.as_str() {
            at.clone_into(&mut entry.last_seen_at);
        }
    }

    /// A conversion entering (`sign` 1) or leaving (-1) its group.
    pub fn conversion(&mut self, counted: Counted, sign: i64) -> Result<(), StoreError> {
        let sale = decimal(&counted.sale_amount)?;
        let commission = decimal(&counted.commission_amount)?;
        let group = self
            .groups
            .entry((counted.status, counted.currency))
            .or_default();
        let (sale, commission) = if sign > 0 {
            (sale, commission)
        } else {
            (-sale, -commission)
        };
        group.0 += sign;
        group.1 = add(group.1, sale)?;
        group.2 = add(group.2, commission)?;
        Ok(())
    }

    /// Takes in the delta of one event whose savepoint committed.
    pub fn absorb(&mut self, other: Delta) -> Result<(), StoreError> {
        for (source, d) in other.sources {
            let entry = self.sources.entry(source).or_default();
            entry.events += d.events;
            entry.deliveries += d.deliveries;
            entry.conflicts += d.conflicts;
            if d.last_seen_at > entry.last_seen_at {
                entry.last_seen_at = d.last_seen_at;
            }
        }
        for (key, (count, sale, commission)) in other.groups {
            let group = self.groups.entry(key).or_default();
            group.0 += count;
            group.1 = add(group.1, sale)?;
            group.2 = add(group.2, commission)?;
        }
        Ok(())
    }

    /// Adds the delta to the kept totals, in the caller's transaction.
    pub fn write(&self, conn: &Connection) -> Result<(), StoreError> {
        if !self.sources.is_empty() {
            let mut add = conn
                .prepare_cached(sql::ADD_SOURCE_TOTALS)
                .map_err(map_err)?;
            for (source, d) in &self.sources {
                add.execute(params![
                    source,
                    d.events,
                    d.deliveries,
                    d.conflicts,
                    d.last_seen_at
                ])
                .map_err(map_err)?;
            }
        }
        for ((status, currency), (count, sale, commission)) in &self.groups {
            if *count == 0 && sale.is_zero() && commission.is_zero() {
                continue;
            }
            add_group(conn, (status, currency), *count, *sale, *commission)?;
        }
        Ok(())
    }
}

fn add_group(
    conn: &Connection,
    (status, currency): (&Option<String>, &Option<String>),
    count: i64,
    sale: Decimal,
    commission: Decimal,
) -> Result<(), StoreError> {
    let found = conn
        .prepare_cached(sql::FIND_CONVERSION_TOTAL)
        .and_then(|mut stmt| {
            stmt.query_row(params![status, currency], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()
        })
        .map_err(map_err)?;
    let Some((rowid, kept, kept_sale, kept_commission)) = found else {
        conn.prepare_cached(sql::INSERT_CONVERSION_TOTAL)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    status,
                    currency,
                    count,
                    sale.to_string(),
                    commission.to_string()
                ])
            })
            .map_err(map_err)?;
        return Ok(());
    };
    let count = kept + count;
    if count == 0 {
        conn.prepare_cached(sql::DELETE_CONVERSION_TOTAL)
            .and_then(|mut stmt| stmt.execute(params![rowid]))
            .map_err(map_err)?;
        return Ok(());
    }
    let sale = add(decimal(&kept_sale)?, sale)?;
    let commission = add(decimal(&kept_commission)?, commission)?;
    conn.prepare_cached(sql::UPDATE_CONVERSION_TOTAL)
        .and_then(|mut stmt| {
            stmt.execute(params![
                rowid,
                count,
                sale.to_string(),
                commission.to_string()
            ])
        })
        .map_err(map_err)?;
    Ok(())
}

/// Checked: `+` panics on overflow, and one stored amount out of range (from before
/// amounts were bounded) must fail its batch with an error, not the writer thread.
fn add(a: Decimal, b: Decimal) -> Result<Decimal, StoreError> {
    a.checked_add(b)
        .ok_or_else(|| StoreError::Internal("a conversion total overflows".into()))
}

fn decimal(text: &str) -> Result<Decimal, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Internal(format!("stored amount {text:?}: {e}")))
}

/// The kept per-source totals.
pub(super) fn source_totals(conn: &Connection) -> Result<Vec<SourceStats>, StoreError> {
    let mut stmt = conn.prepare_cached(sql::SOURCE_TOTALS).map_err(map_err)?;
    all_rows(&mut stmt, [], |row| rows::source_stats(row))
}

/// The kept per-(status, currency) totals, sorted.
pub(super) fn conversion_totals(conn: &Connection) -> Result<Vec<SummaryGroup>, StoreError> {
    let mut stmt = conn
        .prepare_cached(sql::CONVERSION_TOTALS)
        .map_err(map_err)?;
    let mut groups = all_rows(&mut stmt, [], |row| rows::summary_group(row))?;
    sort_groups(&mut groups);
    Ok(groups)
}

/// Every event row counted per source: the recount.
fn count_sources(conn: &Connection) -> Result<Vec<SourceStats>, StoreError> {
    let mut stmt = conn.prepare(sql::SOURCE_STATS).map_err(map_err)?;
    all_rows(&mut stmt, [], |row| rows::source_stats(row))
}

/// Every conversion counted and summed per group: the recount. Summed here, not in SQL:
/// SQLite's `sum()` over decimal text would round.
fn count_conversions(conn: &Connection) -> Result<Vec<SummaryGroup>, StoreError> {
    let mut stmt = conn.prepare(sql::CONVERSION_SUMMARY).map_err(map_err)?;
    let mut rows = stmt.query([]).map_err(map_err)?;
    let mut groups: BTreeMap<GroupKey, (i64, Decimal, Decimal)> = BTreeMap::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let key: GroupKey = (row.get(0).map_err(map_err)?, row.get(1).map_err(map_err)?);
        let sale = decimal(&row.get::<_, String>(2).map_err(map_err)?)?;
        let commission = decimal(&row.get::<_, String>(3).map_err(map_err)?)?;
        let group = groups.entry(key).or_default();
        group.0 += 1;
        group.1 = add(group.1, sale)?;
        group.2 = add(group.2, commission)?;
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

/// Rebuilds every total from the rows, in one transaction on the writer's connection.
pub(super) fn recompute(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(map_err)?;
    tx.execute_batch(sql::RECOMPUTE_SOURCE_TOTALS)
        .map_err(map_err)?;
    for group in count_conversions(&tx)? {
        tx.prepare_cached(sql::INSERT_CONVERSION_TOTAL)
            .and_then(|mut stmt| {
                stmt.execute(params![
                    group.status,
                    group.currency,
                    group.count,
                    group.sale_amount,
                    group.commission_amount
                ])
            })
            .map_err(map_err)?;
    }
    tx.commit().map_err(map_err)
}

/// Right after migration 008 the conversion groups are still to be summed (the migration
/// cannot add decimal text exactly); any later start finds them there.
pub(super) fn fill_if_missing(conn: &mut Connection) -> Result<(), StoreError> {
    let missing: bool = conn
        .query_row(sql::ANY_CONVERSION_TOTALS_MISSING, [], |row| row.get(0))
        .map_err(map_err)?;
    if missing {
        tracing::info!("summing the conversion totals from the rows (migration 008)");
        recompute(conn)?;
    }
    Ok(())
}

impl SqliteStore {
    pub(super) fn verify_totals_now(&self) -> Result<TotalsCheck, StoreError> {
        self.flush_pending_counts()?;
        let mut conn = self.conn()?;
        // One read transaction: in WAL mode it is one snapshot, whatever the writer does.
        let tx = conn.transaction().map_err(map_err)?;
        let kept = (source_totals(&tx)?, conversion_totals(&tx)?);
        let counted = (count_sources(&tx)?, count_conversions(&tx)?);
        tx.commit().map_err(map_err)?;
        Ok(TotalsCheck::compare(
            (&counted.0, &counted.1),
            (&kept.0, &kept.1),
        ))
    }
}
