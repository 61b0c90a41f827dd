//! HTTPS settings (SPEC §9): certificate files, or ACME. Declared here like every other
//! setting (flattened into [`Settings`](super::Settings)) and resolved into [`Https`],
//! which `tls` turns into an acceptor. Files are read by `tls` at startup, so an error
//! can name the file; here only the combinations are checked.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;

use super::ConfigError;
use crate::store::DatabaseUrl;

/// Let's Encrypt's production directory, the default `acme_directory`.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Settings the TOML file may give as a list of strings (joined like the environment's
/// comma-separated form).
pub(super) const LIST_KEYS: &[&str] = &["acme_domains"];

#[derive(Debug, Clone, Args)]
pub struct HttpsSettings {
    /// HTTPS certificate chain (PEM file); with `tls_key`, the listener speaks only HTTPS. SIGHUP reloads both
    #[arg(long, env = "HOOKLATCH_TLS_CERT", global = true, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// HTTPS private key (PEM file) matching `tls_cert`
    #[arg(long, env = "HOOKLATCH_TLS_KEY", global = true, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Domains to get a certificate for with ACME (comma-separated; a list in the file); turns HTTPS on
    #[arg(long, env = "HOOKLATCH_ACME_DOMAINS", global = true, value_name = "NAMES",
          value_parser = DomainList::parse)]
    pub acme_domains: Option<DomainList>,
    /// Contact e-mail given to the ACME server
    #[arg(
        long,
        env = "HOOKLATCH_ACME_EMAIL",
        global = true,
        value_name = "EMAIL"
    )]
    pub acme_email: Option<String>,
    /// ACME directory URL
    #[arg(long, env = "HOOKLATCH_ACME_DIRECTORY", global = true, value_name = "URL",
          default_value = LETS_ENCRYPT)]
    pub acme_directory: String,
    /// ACME account and certificate cache directory (default: `acme` beside the SQLite file, else in the working directory)
    #[arg(long, env = "HOOKLATCH_ACME_CACHE", global = true, value_name = "DIR")]
    pub acme_cache: Option<PathBuf>,
    /// Extra roots (PEM file) to trust when talking to the ACME server, for a private or test ACME server
    #[arg(
        long,
        env = "HOOKLATCH_ACME_CA_ROOTS",
        global = true,
        value_name = "FILE"
    )]
    pub acme_ca_roots: Option<PathBuf>,
}

/// A non-empty list of domain names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainList(pub Vec<String>);

impl DomainList {
    fn parse(text: &str) -> Result<DomainList, String> {
        let names: Vec<String> = text
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .collect();
        if names.is_empty() {
            return Err("must name at least one domain".into());
        }
        if let Some(bad) = names.iter().find(|name| {
            !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '*'))
        }) {
            return Err(format!("{bad:?} is not a domain name"));
        }
        Ok(DomainList(names))
    }
}

/// What the listener speaks.
#[derive(Clone, PartialEq, Eq)]
pub enum Https {
    /// Plain HTTP (a TLS proxy in front, or loopback).
    Off,
    /// A certificate and key from files, reloaded on SIGHUP.
    Files { cert: PathBuf, key: PathBuf },
    /// A certificate obtained and renewed with ACME.
    Acme(AcmeSettings),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcmeSettings {
    pub domains: Vec<String>,
    pub email: Option<String>,
    pub directory: String,
    pub cache: PathBuf,
    pub ca_roots: Option<PathBuf>,
}

impl Https {
    pub fn is_on(&self) -> bool {
        !matches!(self, Https::Off)
    }
}

impl fmt::Debug for Https {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Https::Off => f.write_str("Off"),
            Https::Files { cert, key } => f
                .debug_struct("Files")
                .field("cert", cert)
                .field("key", key)
                .finish(),
            Https::Acme(acme) => f.debug_tuple("Acme").field(acme).finish(),
        }
    }
}

impl HttpsSettings {
    /// Which HTTPS, if any; the combinations SPEC §9 refuses are startup errors.
    pub(super) fn resolve(self, database: &DatabaseUrl) -> Result<Https, ConfigError> {
        match (self.tls_cert, self.tls_key, self.acme_domains) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => Err(ConfigError(
                "acme_domains and tls_cert/tls_key are both set: use one way to get a certificate"
                    .into(),
            )),
            (Some(cert), None, None) => Err(ConfigError(format!(
                "tls_cert is set ({}) but tls_key is not: set both, or neither",
                cert.display()
            ))),
            (None, Some(key), None) => Err(ConfigError(format!(
                "tls_key is set ({}) but tls_cert is not: set both, or neither",
                key.display()
            ))),
            (Some(cert), Some(key), None) => Ok(Https::Files { cert, key }),
            (None, None, Some(domains)) => Ok(Https::Acme(AcmeSettings {
                domains: domains.0,
                email: self.acme_email,
                directory: self.acme_directory,
                cache: self.acme_cache.unwrap_or_else(|| default_cache(database)),
                ca_roots: self.acme_ca_roots,
            })),
            (None, None, None) => Ok(Https::Off),
        }
    }
}

/// `acme` beside the SQLite file, else in the working directory.
fn default_cache(database: &DatabaseUrl) -> PathBuf {
    match database {
        DatabaseUrl::Sqlite(path) => path
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("acme"),
        _ => PathBuf::from("acme"),
    }
}
