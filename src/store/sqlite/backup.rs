//! `hooklatch backup` on SQLite: SQLite's online backup API copies the live database
//! page by page while the server keeps committing, then the copy checks itself.
//!
//! Why not `cp`: in WAL mode the newest commits live in `-wal` until a checkpoint, and a
//! file copied while a checkpoint writes pages into it can mix two states. The backup
//! API reads through SQLite's own locking, so the copy is one committed state.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use super::map_err;
use crate::store::{BackupError, BackupReport, StoreError};

/// Copies the database behind `source` to a new file at `path` and checks the copy.
/// `wait` bounds how long the copy waits for a lock it cannot take at once.
pub(super) fn copy(
    source: &Connection,
    path: &Path,
    wait: Duration,
) -> Result<BackupReport, BackupError> {
    // create_new claims the name atomically: no race with another file appearing there.
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => BackupError::Exists(path.to_owned()),
            _ => BackupError::Io {
                path: path.to_owned(),
                source: e,
            },
        })?;
    let copied = copy_into(source, path, wait);
    if copied.is_err() {
        // Half a backup looks like a backup; leave nothing that could be mistaken for one.
        for suffix in ["", "-journal", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
    copied
}

fn copy_into(
    source: &Connection,
    path: &Path,
    wait: Duration,
) -> Result<BackupReport, BackupError> {
    let mut copy = Connection::open(path).map_err(store_err)?;
    {
        let backup = Backup::new(source, &mut copy).map_err(store_err)?;
        let deadline = Instant::now() + wait;
        // All pages in one step: one read transaction, so one consistent snapshot, and in
        // WAL mode a reader never blocks the server's writers. Copying in smaller steps
        // would restart from page 1 each time the server commits in between, which under
        // steady load might never finish.
        loop {
            match backup.step(-1).map_err(store_err)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked => {
                    if Instant::now() >= deadline {
                        return Err(StoreError::Timeout(
                            "the database stayed locked; no backup was taken".into(),
                        )
                        .into());
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    return Err(StoreError::Internal("unexpected backup step result".into()).into());
                }
            }
        }
    }
    // A backup is one self-contained file: the copy leaves WAL mode (the server turns
    // WAL back on when it opens a restored file).
    let mode: String = copy
        .query_row("PRAGMA journal_mode=DELETE", [], |row| row.get(0))
        .map_err(store_err)?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::Internal(format!("the copy stayed in {mode} mode")).into());
    }
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(store_err)?;
    if check != "ok" {
        return Err(BackupError::Corrupt(check));
    }
    copy.close().map_err(|(_, e)| store_err(e))?;
    let bytes = std::fs::metadata(path)
        .map_err(|e| BackupError::Io {
            path: path.to_owned(),
            source: e,
        })?
        .len();
    Ok(BackupReport { bytes })
}

fn store_err(err: rusqlite::Error) -> BackupError {
    BackupError::Store(map_err(err))
}
