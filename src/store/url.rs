//! `DatabaseUrl::parse` is the one place a backend is chosen.

use std::fmt;
use std::path::PathBuf;

use crate::error::redact;

/// Where events are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    SqliteMemory,
    Postgres(String),
}

/// A database URL no backend accepts. The text names the accepted forms and shows the
/// URL only redacted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(pub String);

impl DatabaseUrl {
    pub const ACCEPTED: &'static str =
        "sqlite://PATH, sqlite::memory:, postgres://USER@HOST/DB or postgresql://USER@HOST/DB";

    pub fn parse(url: &str) -> Result<DatabaseUrl, UrlError> {
        if url == "sqlite::memory:" {
            Ok(DatabaseUrl::SqliteMemory)
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(UrlError(format!(
                    "DATABASE_URL {url:?} names no file; accepted forms: {}",
                    Self::ACCEPTED
                )));
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(UrlError(format!(
                "DATABASE_URL must be one of {}; got {:?}",
                Self::ACCEPTED,
                redact(url)
            )))
        }
    }
}

/// Never print a password, in logs or in `{:?}`.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            DatabaseUrl::SqliteMemory => f.write_str("sqlite::memory:"),
            DatabaseUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
