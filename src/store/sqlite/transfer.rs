//! Bulk moves into and out of SQLite ([`Transfer`]): each batch written is one job on the
//! writer thread, one `IMMEDIATE` transaction and one fsync for the whole batch,
//! serialised with the deliveries a running server writes.

use rusqlite::types::ValueRef;
use rusqlite::{Connection, TransactionBehavior};

use super::totals::Delta;
use super::{SqliteStore, map_err};
use crate::model::{History, NewEvent, Outcome};
use crate::store::transfer::{Bound, CopyRow, Table, Written, row_key};
use crate::store::{StoreError, Transfer};

impl Transfer for SqliteStore {
    fn import_batch(&self, batch: Vec<(NewEvent, History)>) -> Result<Vec<Outcome>, StoreError> {
        self.with_writer(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            // The whole batch commits or none of it, so one delta for the batch.
            let mut delta = Delta::default();
            let outcomes = batch
                .iter()
                .map(|(event, history)| {
                    super::process::apply(&tx, event, Some(history), &mut delta)
                })
                .collect::<Result<Vec<_>, _>>()?;
            delta.write(&tx)?;
            tx.commit().map_err(map_err)?;
            Ok(outcomes)
        })
    }

    fn copy_bounds(&self) -> Result<Vec<Bound>, StoreError> {
        let conn = self.conn()?;
        conn.query_row(COPY_BOUNDS, [], |row| {
            (0..Table::ALL.len())
                .map(|i| {
                    Ok(Bound {
                        rows: row.get(2 * i)?,
                        max_key: row.get(2 * i + 1)?,
                    })
                })
                .collect()
        })
        .map_err(map_err)
    }

    fn read_rows(
        &self,
        table: Table,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> Result<Vec<CopyRow>, StoreError> {
        read(&*self.conn()?, table, after, upto, limit)
    }

    fn write_rows(&self, table: Table, rows: Vec<CopyRow>) -> Result<Written, StoreError> {
        self.with_writer(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(map_err)?;
            let mut written = Written::default();
            {
                let mut insert = tx.prepare_cached(statements(table).1).map_err(map_err)?;
                for row in &rows {
                    let changed = insert
                        .execute(rusqlite::params_from_iter(row.iter()))
                        .map_err(map_err)?;
                    if changed == 1 {
                        written.inserted += 1;
                        continue;
                    }
                    let key = row_key(row)?;
                    let there = read(&tx, table, key - 1, key, 1)?;
                    if there.first() == Some(row) {
                        written.present += 1;
                    } else {
                        written.different.push(key);
                    }
                }
            }
            tx.commit().map_err(map_err)?;
            Ok(written)
        })
    }

    /// A new rowid is the largest plus one: nothing to move.
    fn finish_copy(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

const COPY_BOUNDS: &str = include_str!("../../../sql/sqlite/copy_bounds.sql");

/// `(read, insert)` statements of a table.
fn statements(table: Table) -> (&'static str, &'static str) {
    macro_rules! pair {
        ($name:literal) => {
            (
                include_str!(concat!("../../../sql/sqlite/copy_read_", $name, ".sql")),
                include_str!(concat!("../../../sql/sqlite/copy_insert_", $name, ".sql")),
            )
        };
    }
    match table {
        Table::Conversions => pair!("conversions"),
        Table::Events => pair!("webhook_events"),
        Table::Conflicts => pair!("webhook_conflicts"),
        Table::Outbox => pair!("forward_outbox"),
        Table::Attempts => pair!("forward_attempts"),
        Table::Sources => pair!("forward_sources"),
    }
}

/// Rows as text: SQLite's integers in decimal, its text as stored (every other column
/// is text already); the target's column affinity turns integer text back into integers.
fn read(
    conn: &Connection,
    table: Table,
    after: i64,
    upto: i64,
    limit: u32,
) -> Result<Vec<CopyRow>, StoreError> {
    let mut statement = conn.prepare_cached(statements(table).0).map_err(map_err)?;
    let columns = statement.column_count();
    let mut rows = statement
        .query(rusqlite::params![after, limit, upto])
        .map_err(map_err)?;
    let mut all = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let mut values = Vec::with_capacity(columns);
        for index in 0..columns {
            values.push(match row.get_ref(index).map_err(map_err)? {
                ValueRef::Null => None,
                ValueRef::Integer(n) => Some(n.to_string()),
                ValueRef::Real(x) => Some(x.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Some(String::from_utf8_lossy(t).into_owned())
                }
            });
        }
        all.push(values);
    }
    Ok(all)
}
