//! How PostgreSQL errors become store errors: which mean a lost connection, which a
//! timeout, which a refusal, and their one-line text.

use std::error::Error as _;

use postgres::Row;
use postgres::error::SqlState;
use postgres::types::Type;

use super::chain;
use crate::error::one_line;
use crate::store::StoreError;
use crate::store::rows::Columns;

pub(super) fn get<'a, T: postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| StoreError::Internal(format!("column {index}: {e}")))
}

/// True when the error means the connection itself is gone: the socket closed or broke,
/// or the server ended the session (shutdown, `pg_terminate_backend`).
pub(super) fn connection_lost(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                ]
                .contains(code)
        }
        None => io_cause(err),
    }
}

pub(super) fn io_cause(err: &postgres::Error) -> bool {
    let mut cause = err.source();
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Waits the server gave up on are timeouts (the provider retries); a lost or refusing
/// server is unavailable; anything else is unexpected.
pub(super) fn map_err(err: &postgres::Error) -> StoreError {
    let text = pg_text(err);
    let Some(code) = err.code() else {
        return if err.is_closed() || io_cause(err) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Internal(text)
        };
    };
    let class = &code.code()[..2];
    if [
        SqlState::QUERY_CANCELED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ]
    .contains(code)
    {
        StoreError::Timeout(text)
    } else if connection_lost(err)
        // insufficient resources (too many connections, disk full), authentication,
        // unknown database, read-only standby: the server refuses the work.
        || class == "53"
        || class == "28"
        || *code == SqlState::INVALID_CATALOG_NAME
        || *code == SqlState::READ_ONLY_SQL_TRANSACTION
    {
        StoreError::Unavailable(text)
    } else {
        StoreError::Internal(text)
    }
}

/// The message inside a store error, without the variant's prefix.
pub(super) fn detail(err: &StoreError) -> String {
    match err {
        StoreError::Unavailable(m) | StoreError::Timeout(m) | StoreError::Internal(m) => m.clone(),
    }
}

/// A driver error on one line; a server error as the server worded it, with its SQLSTATE.
pub(super) fn pg_text(err: &postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => one_line(&format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        )),
        None => chain(err),
    }
}

impl Columns for Row {
    fn opt_int(&self, index: usize) -> Result<Option<i64>, StoreError> {
        let column = self
            .columns()
            .get(index)
            .ok_or_else(|| StoreError::Internal(format!("no column {index}")))?;
        // Widened here so the shared mappers need not know each column's width.
        match *column.type_() {
            Type::INT2 => get::<Option<i16>>(self, index).map(|v| v.map(i64::from)),
            Type::INT4 => get::<Option<i32>>(self, index).map(|v| v.map(i64::from)),
            _ => get(self, index),
        }
    }

    fn opt_text(&self, index: usize) -> Result<Option<String>, StoreError> {
        get(self, index)
    }
}
