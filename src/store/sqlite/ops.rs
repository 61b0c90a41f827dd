//! Operations on SQLite: migrations, pruning and the totals rebuild run on the writer
//! thread (so no batch sees a half-migrated schema or half-rebuilt totals, and a long
//! prune interleaves with deliveries); backup copies the live file.

use std::path::Path;
use std::time::Duration;

use super::{SqliteStore, admin, backup, totals};
use crate::read::{Pruned, Timestamp, TotalsCheck};
use crate::store::{
    BackupError, BackupReport, MigrationFile, Operations, StoreError, migration_files,
};

const MIGRATIONS: [MigrationFile; 11] = migration_files!("sqlite");

impl Operations for SqliteStore {
    fn migrate(&self) -> Result<(), StoreError> {
        let migrations = crate::store::refinery_migrations(&MIGRATIONS)?;
        // On the writer, so no batch runs against a half-migrated schema.
        self.with_writer(move |conn| {
            // Grouped: every pending migration and its history row in one transaction.
            // Ungrouped, refinery commits a migration and its history row separately, and
            // a crash between the two leaves a store that no start can migrate again.
            refinery::Runner::new(&migrations)
                .set_grouped(true)
                .run(conn)
                .map_err(|e| StoreError::Unavailable(format!("SQLite migration failed: {e}")))?;
            totals::fill_if_missing(conn)
        })
    }

    fn recompute_totals(&self) -> Result<(), StoreError> {
        // On the writer, between batches: no batch adds to totals being rebuilt.
        self.flush_pending_counts()?;
        self.with_writer(totals::recompute)
    }

    fn verify_totals(&self) -> Result<TotalsCheck, StoreError> {
        self.verify_totals_now()
    }

    fn backup_to(&self, path: &Path) -> Result<BackupReport, BackupError> {
        // A pooled connection reads like any request would; the server's writers go on.
        backup::copy(&*self.conn()?, path, self.timeout)
    }

    fn prune_payloads(&self, before: &Timestamp, dry_run: bool) -> Result<Pruned, StoreError> {
        admin::prune_payloads(self, before, dry_run)
    }

    fn close(&self, within: Duration) -> bool {
        self.writer
            .as_ref()
            .is_none_or(|writer| writer.close(within))
    }
}
