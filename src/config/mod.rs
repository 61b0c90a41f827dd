//! Settings: values and their layering, never command arguments (those are `cli`'s).
//! Each setting is declared once in [`Settings`] (`config/declaration.rs`); precedence is
//! flag, then environment, then the TOML file, then the default (`config/layering.rs`).
//!
//! Per-source settings live in `[sources.<name>]` tables and in
//! `HOOKLATCH_SECRET_<SOURCE>` / `HOOKLATCH_FORWARD_TO_<SOURCE>` variables
//! (`config/sources.rs`). `store::DatabaseUrl::parse` is the one place a backend is chosen.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use clap::FromArgMatches;

use crate::store::StoreOptions;

mod declaration;
mod https;
mod layering;
mod source_keys;
mod sources;
mod table;
mod values;

use declaration::{settings_command, without_env};

pub use crate::error::redact;
/// Re-exported: a `Config` names its store by this URL.
pub use crate::store::DatabaseUrl;
pub use declaration::Settings;
pub use https::{AcmeSettings, DomainList, Https, HttpsSettings, LETS_ENCRYPT};
pub use layering::{LoadError, load};
pub use source_keys::{SOURCE_KEYS, SourceKey};
pub use sources::{
    FORWARD_TO_PREFIX, SECRET_PREFIX, SourceSettings, Sources, destination, secret_variable,
    type_matches,
};
pub use table::settings_table;
pub use values::{
    AdminToken, AlertUrl, ForwardSecret, LogFormat, OnConflict, SqliteSynchronous, parse_age,
};

/// A setting that cannot be used; startup prints it on one line and exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What forwarding needs (SPEC §6).
#[derive(Clone)]
pub struct ForwardConfig {
    /// The decoded `whsec_` key; requests are signed when set.
    pub secret: Option<Vec<u8>>,
    pub timeout: Duration,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_attempts: u32,
    pub concurrency: usize,
    /// Consecutive failed attempts that pause a source (its own setting wins).
    pub pause_after: u32,
    /// Where alerts go (`alert_to`); none are sent without it.
    pub alert_to: Option<String>,
}

impl fmt::Debug for ForwardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardConfig")
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("timeout", &self.timeout)
            .field("retry_initial", &self.retry_initial)
            .field("retry_max", &self.retry_max)
            .field("max_attempts", &self.max_attempts)
            .field("concurrency", &self.concurrency)
            .field("pause_after", &self.pause_after)
            .field(
                "alert_to",
                &self.alert_to.as_deref().map(sources::destination),
            )
            .finish()
    }
}

/// What one client may hold of the server: the caps on open connections and on requests
/// in flight, and HTTP/2 keep-alive (the server loop applies them, `http::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub max_requests: usize,
    pub http2_keepalive_interval: Duration,
    pub http2_keepalive_timeout: Duration,
}

/// Everything the service needs, resolved. Its `Debug` never shows a secret.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// HTTPS from files, from ACME, or off.
    pub https: Https,
    pub database_url: DatabaseUrl,
    pub max_body_bytes: u64,
    pub on_conflict: OnConflict,
    pub store: StoreOptions,
    pub body_timeout: Duration,
    pub shutdown_grace: Duration,
    /// Caps on connections and requests in flight, HTTP/2 keep-alive.
    pub limits: Limits,
    pub sources: Sources,
    /// `HOOKLATCH_ALLOW_UNSIGNED`: every source without a secret accepts unsigned
    /// deliveries, even off loopback.
    pub allow_unsigned: bool,
    pub admin_token: Option<String>,
    pub payload_retention: Option<Duration>,
    pub log_format: LogFormat,
    pub forward: ForwardConfig,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("https", &self.https)
            .field("database_url", &self.database_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("on_conflict", &self.on_conflict)
            .field("store", &self.store)
            .field("body_timeout", &self.body_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("limits", &self.limits)
            .field("sources", &self.sources)
            .field("allow_unsigned", &self.allow_unsigned)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "***"))
            .field("payload_retention", &self.payload_retention)
            .field("log_format", &self.log_format)
            .field("forward", &self.forward)
            .finish()
    }
}

impl Default for Config {
    /// The declared defaults, with no file and no environment.
    fn default() -> Self {
        let matches = without_env(settings_command())
            .try_get_matches_from(["hooklatch"])
            .expect("the declared defaults parse");
        let settings = Settings::from_arg_matches(&matches).expect("the declared defaults parse");
        Config::resolve(settings, Sources::default()).expect("the declared defaults resolve")
    }
}

impl Config {
    /// Shapes resolved settings into what the service uses. Every value was validated
    /// on its own by its parser; only checks across settings are left.
    fn resolve(s: Settings, mut sources: Sources) -> Result<Config, ConfigError> {
        sources.serving_on(s.listen, s.allow_unsigned);
        let https = s.https.resolve(&s.database_url)?;
        Ok(Config {
            listen: s.listen,
            https,
            database_url: s.database_url,
            max_body_bytes: s.max_body_bytes,
            on_conflict: s.on_conflict,
            store: StoreOptions {
                pool_size: s.pool_size,
                connect_timeout: s.connect_timeout,
                statement_timeout: s.store_timeout,
                sqlite_full_sync: s.sqlite_synchronous == SqliteSynchronous::Full,
                pg_prepared_statements: s.pg_prepared_statements,
                ..StoreOptions::default()
            },
            body_timeout: s.body_timeout,
            shutdown_grace: s.shutdown_grace,
            limits: Limits {
                max_connections: s.max_connections,
                max_requests: s.max_requests,
                http2_keepalive_interval: s.http2_keepalive_interval,
                http2_keepalive_timeout: s.http2_keepalive_timeout,
            },
            sources,
            allow_unsigned: s.allow_unsigned,
            admin_token: s.admin_token.map(|token| token.0),
            payload_retention: s.payload_retention,
            log_format: s.log_format,
            forward: ForwardConfig {
                secret: s.forward_secret.map(|secret| secret.0),
                timeout: s.forward_timeout,
                retry_initial: s.forward_retry_initial,
                retry_max: s.forward_retry_max,
                max_attempts: s.forward_max_attempts,
                concurrency: s.forward_concurrency,
                pause_after: s.forward_pause_after,
                alert_to: s.alert_to.map(|url| url.0),
            },
        })
    }
}

#[cfg(test)]
mod tests;
