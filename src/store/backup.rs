//! What `Store::backup_to` answers. A backup is a store verb so that the command line
//! knows no SQL: each backend says how it is copied, or why it is not.

use std::path::PathBuf;

use thiserror::Error;

use super::StoreError;

/// A finished copy that passed its integrity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    /// Size of the copy on disk.
    pub bytes: u64,
}

/// Why no backup was written. Every variant leaves no file behind at the target path,
/// except `Exists`, which never touched it.
#[derive(Debug, Error)]
pub enum BackupError {
    /// The target is never overwritten: it may be the last good backup.
    #[error("{} already exists; a backup never overwrites a file", .0.display())]
    Exists(PathBuf),
    /// The backend is copied by its own tools (PostgreSQL: `pg_dump`).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The target could not be created or read back.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The copy was written but `integrity_check` did not answer `ok`.
    #[error("the copy failed its integrity check: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
