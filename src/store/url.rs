//! `DatabaseUrl::parse` is the one place a backend is chosen, and `PostgresTls::split` the
//! one place a PostgreSQL URL's TLS options are read.

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
            // A bad sslmode is a settings error, reported before anything connects.
            PostgresTls::split(url)?;
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

/// What `sslmode` asks of the connection to PostgreSQL, in libpq's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain text. hooklatch's default (libpq's is `prefer`): see the README.
    #[default]
    Disable,
    /// TLS when the server offers it, plain text (with a warning) when it refuses.
    Prefer,
    /// TLS or no connection.
    Require,
    /// TLS with a certificate chaining to a trusted CA.
    VerifyCa,
    /// TLS with a certificate chaining to a trusted CA and naming the host.
    VerifyFull,
}

impl TlsMode {
    const NAMES: [(&'static str, TlsMode); 5] = [
        ("disable", TlsMode::Disable),
        ("prefer", TlsMode::Prefer),
        ("require", TlsMode::Require),
        ("verify-ca", TlsMode::VerifyCa),
        ("verify-full", TlsMode::VerifyFull),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, mode)| *mode == self)
            .map_or("disable", |(name, _)| name)
    }
}

/// Where the CAs that certificates are checked against come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCerts {
    /// `sslrootcert=PATH`: the PEM certificates in that file, and only those.
    File(PathBuf),
    /// `sslrootcert=system` (libpq 16's spelling): the system's CAs.
    System,
}

/// The TLS part of a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresTls {
    pub mode: TlsMode,
    /// `sslrootcert`. Without it the verify modes use the system's CAs; with it,
    /// `prefer` and `require` check the chain too, as libpq does.
    pub root_cert: Option<RootCerts>,
}

impl PostgresTls {
    /// Takes `sslmode` and `sslrootcert` out of `url` and returns the rest for the
    /// driver, whose own parser knows neither `verify-ca`, `verify-full` nor
    /// `sslrootcert`. The URL is split the way the driver splits it (credentials up to
    /// the first `@`, the query after the next `?`), so a password is never mistaken for
    /// an option. Errors quote only the option, never the URL.
    pub fn split(url: &str) -> Result<(String, PostgresTls), UrlError> {
        let mut tls = PostgresTls {
            mode: TlsMode::default(),
            root_cert: None,
        };
        let after_scheme = url.find("://").map_or(0, |i| i + 3);
        let after_credentials = url[after_scheme..]
            .find('@')
            .map_or(after_scheme, |i| after_scheme + i + 1);
        let Some(question) = url[after_credentials..].find('?') else {
            return Ok((url.to_owned(), tls));
        };
        let (base, query) = url.split_at(after_credentials + question);
        let mut kept = Vec::new();
        for pair in query[1..].split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
            match &*percent_encoding::percent_decode_str(key).decode_utf8_lossy() {
                "sslmode" => {
                    tls.mode = TlsMode::NAMES
                        .iter()
                        .find(|(name, _)| *name == value)
                        .map(|(_, mode)| *mode)
                        .ok_or_else(|| {
                            UrlError(format!(
                                "DATABASE_URL: sslmode must be one of disable, prefer, require, verify-ca or verify-full; got {value:?}"
                            ))
                        })?;
                }
                "sslrootcert" => {
                    if value.is_empty() {
                        return Err(UrlError(
                            "DATABASE_URL: sslrootcert names no file".to_owned(),
                        ));
                    }
                    tls.root_cert = Some(if value == "system" {
                        RootCerts::System
                    } else {
                        RootCerts::File(PathBuf::from(&*value))
                    });
                }
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        Ok((rest, tls))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, PostgresTls) {
        PostgresTls::split(url).unwrap()
    }

    #[test]
    fn tls_options_are_taken_out_and_the_rest_left_verbatim() {
        let (rest, tls) = split(
            "postgres://u:pw@db:5432/x?connect_timeout=5&sslmode=verify-full&sslrootcert=%2Fetc%2Fpg%20ca.pem&application_name=a",
        );
        assert_eq!(
            rest,
            "postgres://u:pw@db:5432/x?connect_timeout=5&application_name=a"
        );
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(
            tls.root_cert,
            Some(RootCerts::File(PathBuf::from("/etc/pg ca.pem")))
        );

        let (rest, tls) = split("postgresql://u@a:1,b:2/x?sslmode=require");
        assert_eq!(rest, "postgresql://u@a:1,b:2/x");
        assert_eq!((tls.mode, tls.root_cert), (TlsMode::Require, None));

        let (_, tls) = split("postgres://u@h/x?sslrootcert=system&sslmode=verify-ca");
        assert_eq!(tls.mode, TlsMode::VerifyCa);
        assert_eq!(tls.root_cert, Some(RootCerts::System));
    }

    #[test]
    fn without_sslmode_the_url_is_unchanged_and_plain_text() {
        for url in [
            "postgres://u@h/x",
            "postgres://u@h/x?target_session_attrs=read-write",
            // Inside the password, as the driver reads it: not options.
            "postgres://u:p?sslmode=require&x@h/x",
        ] {
            let (rest, tls) = split(url);
            assert_eq!(rest, url);
            assert_eq!((tls.mode, tls.root_cert), (TlsMode::Disable, None), "{url}");
        }
    }

    #[test]
    fn an_unknown_sslmode_is_refused_naming_the_accepted_ones_and_not_the_password() {
        for (url, shown) in [
            ("postgres://u:hunter2@h/x?sslmode=allow", "\"allow\""),
            (
                "postgres://u:hunter2@h/x?sslmode=VERIFY-FULL",
                "\"VERIFY-FULL\"",
            ),
            ("postgres://u:hunter2@h/x?sslmode=", "\"\""),
        ] {
            let err = PostgresTls::split(url).unwrap_err().0;
            assert!(err.contains("verify-full") && err.contains(shown), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
            assert_eq!(DatabaseUrl::parse(url).unwrap_err().0, err);
        }
        let err = PostgresTls::split("postgres://u@h/x?sslrootcert=").unwrap_err();
        assert!(err.0.contains("sslrootcert"), "{err}");
    }

    #[test]
    fn every_mode_has_its_libpq_name() {
        for (name, mode) in TlsMode::NAMES {
            assert_eq!(mode.name(), name);
            let (_, tls) = split(&format!("postgres://h/x?sslmode={name}"));
            assert_eq!(tls.mode, mode);
        }
    }
}
