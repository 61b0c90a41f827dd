//! Operations on PostgreSQL: migrations (one instance at a time, under an advisory
//! lock), and backup, which is PostgreSQL's own tools' job.

use std::path::Path;

use postgres::{Client, NoTls};

use super::errors::{detail, map_err};
use super::{PostgresStore, chain, off_runtime, sql};
use crate::read::{Pruned, Timestamp, TotalsCheck};
use crate::store::{
    BackupError, BackupReport, MigrationFile, Operations, StoreError, migration_files,
};

const MIGRATIONS: [MigrationFile; 8] = migration_files!("postgres");

/// Key of the session advisory lock held while migrating ("hooklatc" in ASCII), so that
/// instances starting together migrate one after the other.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6c61_7463;

impl PostgresStore {
    /// The body of [`Store::migrate`], on a thread where the client may block.
    fn migrate_now(&self) -> Result<(), StoreError> {
        let mut client = self.migration_config.connect(NoTls).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot connect to PostgreSQL to migrate: {}",
                chain(&e)
            ))
        })?;
        client
            .execute(sql::MIGRATION_LOCK, &[&MIGRATION_LOCK])
            .map_err(|e| map_err(&e))?;
        let migrated = Self::run_migrations(&mut client);
        let unlocked = client
            .execute(sql::MIGRATION_UNLOCK, &[&MIGRATION_LOCK])
            .map(|_| ())
            .map_err(|e| map_err(&e));
        migrated.and(unlocked)
    }

    fn run_migrations(client: &mut Client) -> Result<(), StoreError> {
        let migrations = crate::store::refinery_migrations(&MIGRATIONS)?;
        // Grouped: every pending migration and its history row in one transaction.
        // Ungrouped, refinery commits a migration and its history row separately, and a
        // crash between the two leaves a store no start can migrate again.
        refinery::Runner::new(&migrations)
            .set_grouped(true)
            .run(client)
            .map_err(|e| {
                StoreError::Unavailable(format!("PostgreSQL migration failed: {}", chain(&e)))
            })?;
        client.batch_execute(sql::PROCESS_FUNCTION).map_err(|e| {
            let err = map_err(&e);
            StoreError::Internal(format!(
                "cannot install process_webhook_idempotently: {}",
                detail(&err)
            ))
        })
    }
}

impl Operations for PostgresStore {
    /// Runs on a dedicated connection holding a session advisory lock, so instances
    /// starting together migrate one at a time; the server releases the lock with the
    /// connection should this process die mid-way. Then (re)installs the function.
    fn migrate(&self) -> Result<(), StoreError> {
        off_runtime(|| self.migrate_now())
    }

    fn prune_payloads(&self, before: &Timestamp, dry_run: bool) -> Result<Pruned, StoreError> {
        super::admin::prune_payloads(self, before, dry_run)
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
