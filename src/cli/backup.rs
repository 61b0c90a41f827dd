//! `hooklatch backup PATH`: a consistent copy of the live store, taken while a server
//! keeps serving. How a backend is copied is the store's business (`Store::backup_to`);
//! this command only chooses the store, refuses what cannot be copied, and reports.

use std::path::Path;

use crate::config::Config;
use crate::store::{self, DatabaseUrl};

/// Runs the command; the `Ok` text is printed on stdout, an `Err` is the one-line reason
/// for exit status 1.
pub fn run(config: &Config, path: &Path) -> Result<String, String> {
    match &config.database_url {
        // Opening a missing file would create an empty database and back that up.
        DatabaseUrl::Sqlite(db) if !db.exists() => {
            return Err(format!(
                "no SQLite database at {}: nothing to back up",
                db.display()
            ));
        }
        DatabaseUrl::SqliteMemory => {
            return Err("sqlite::memory: lives inside one process: nothing to back up".into());
        }
        _ => {}
    }
    let store = store::open(&config.database_url, &config.store)
        .map_err(|e| format!("cannot open {}: {e}", config.database_url))?;
    let report = store.backup_to(path).map_err(|e| e.to_string())?;
    Ok(format!(
        "backup written to {}: {} bytes, integrity_check ok",
        path.display(),
        report.bytes
    ))
}
