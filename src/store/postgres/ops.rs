//! Operations on PostgreSQL: migrations (one instance at a time, under an advisory
//! lock), and backup, which is PostgreSQL's own tools' job.

use std::path::Path;
use std::time::Duration;

use postgres::types::Type;

use super::errors::{detail, map_err, pg_text};
use super::{PostgresStore, chain, off_runtime, sql};
use crate::read::{Pruned, Timestamp, TotalsCheck};
use crate::store::{
    BackupError, BackupReport, MigrationFile, Operations, StoreError, migration_files,
};

const MIGRATIONS: [MigrationFile; 11] = migration_files!("postgres");

/// Key of the transaction advisory lock held while migrating ("hooklatc" in ASCII), so
/// that instances starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6c61_7463;

impl PostgresStore {
    /// The body of [`Store::migrate`], on a thread where the client may block: every
    /// migration, its history and the function in one transaction that first takes the
    /// lock. A transaction-level lock, unlike a session lock, stays with the server
    /// connection a transaction pooler (PgBouncer) lends for the transaction, and ends
    /// with it.
    fn migrate_now(&self) -> Result<(), StoreError> {
        let mut client = self
            .tls
            .connect(&self.migration_config)
            .map_err(|(e, tls)| {
                StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL to migrate: {}",
                    tls.unwrap_or_else(|| chain(&e))
                ))
            })?;
        let mut transaction = client.transaction().map_err(|e| map_err(&e))?;
        transaction
            .execute_typed(sql::MIGRATION_LOCK, &[(&MIGRATION_LOCK, Type::INT8)])
            .map_err(|e| map_err(&e))?;
        let mut locked = Locked(transaction);
        let migrations = crate::store::refinery_migrations(&MIGRATIONS)?;
        refinery::Runner::new(&migrations)
            .set_grouped(true)
            .run(&mut locked)
            .map_err(|e| {
                StoreError::Unavailable(format!("PostgreSQL migration failed: {}", chain(&e)))
            })?;
        let Locked(mut transaction) = locked;
        transaction
            .batch_execute(sql::PROCESS_FUNCTION)
            .map_err(|e| {
                let err = map_err(&e);
                StoreError::Internal(format!(
                    "cannot install process_webhook_idempotently: {}",
                    detail(&err)
                ))
            })?;
        transaction.commit().map_err(|e| map_err(&e))
    }
}

/// The migration transaction as refinery sees it: each transaction refinery opens is a
/// savepoint inside it, and its reads go out unnamed (a pooler keeps no names).
struct Locked<'t>(postgres::Transaction<'t>);

/// What refinery's driver traits may fail with here.
#[derive(Debug, thiserror::Error)]
enum LockedError {
    #[error("{}", pg_text(.0))]
    Pg(#[from] postgres::Error),
    #[error("refinery_schema_history: {0}")]
    History(String),
}

impl refinery_core::traits::sync::Transaction for Locked<'_> {
    type Error = LockedError;

    fn execute<'a, T: Iterator<Item = &'a str>>(
        &mut self,
        queries: T,
    ) -> Result<usize, LockedError> {
        let mut savepoint = self.0.transaction()?;
        let mut count = 0;
        for query in queries {
            savepoint.batch_execute(query)?;
            count += 1;
        }
        savepoint.commit()?;
        Ok(count)
    }
}

impl refinery_core::traits::sync::Query<Vec<refinery::Migration>> for Locked<'_> {
    fn query(&mut self, query: &str) -> Result<Vec<refinery::Migration>, LockedError> {
        let bad =
            |what: &str, e: &dyn std::fmt::Display| LockedError::History(format!("{what}: {e}"));
        self.0
            .query_typed(query, &[])?
            .iter()
            .map(|row| {
                let version: i32 = row.try_get(0)?;
                let name: String = row.try_get(1)?;
                let applied_on: String = row.try_get(2)?;
                let checksum: String = row.try_get(3)?;
                let applied_on = time::OffsetDateTime::parse(
                    &applied_on,
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|e| bad("applied_on", &e))?;
                let checksum = checksum.parse::<u64>().map_err(|e| bad("checksum", &e))?;
                Ok(refinery::Migration::applied(
                    version, name, applied_on, checksum,
                ))
            })
            .collect()
    }
}

impl refinery::Migrate for Locked<'_> {}

impl Operations for PostgresStore {
    /// Runs on a dedicated connection, in one transaction holding an advisory lock, so
    /// instances starting together migrate one at a time (also through a transaction
    /// pooler); should this process die mid-way, the transaction and its lock end with
    /// the connection. (Re)installs the function in the same transaction.
    fn migrate(&self) -> Result<(), StoreError> {
        off_runtime(|| self.migrate_now())
    }

    fn prune_payloads(&self, before: &Timestamp, dry_run: bool) -> Result<Pruned, StoreError> {
        super::admin::prune_payloads(self, before, dry_run)
    }

    fn close(&self, within: Duration) -> bool {
        self.flusher
            .as_ref()
            .is_none_or(|flusher| flusher.close(within))
    }

    fn recompute_totals(&self) -> Result<(), StoreError> {
        self.recompute_totals_now()
    }

    fn verify_totals(&self) -> Result<TotalsCheck, StoreError> {
        self.verify_totals_now()
    }

    /// A PostgreSQL database is not one file hooklatch could copy consistently; its own
    /// tools do it (and point-in-time recovery, which no copy by hooklatch could offer).
    fn backup_to(&self, _path: &Path) -> Result<BackupReport, BackupError> {
        Err(BackupError::Unsupported(
            "backup copies SQLite databases only; back up PostgreSQL with pg_dump, e.g. pg_dump --format=custom --file=hooklatch.dump \"$DATABASE_URL\"",
        ))
    }
}
