//! Settings: flags, then environment, then an optional TOML file, then defaults.
//! `DatabaseUrl::parse` is the one place a backend is chosen.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::model::Source;
use crate::sources::{Encoding, GenericScheme, IdLocation, Preset, standard_secret_key};
use crate::store::StoreOptions;

#[derive(Debug, Parser)]
#[command(
    name = "hooklatch",
    version,
    about = "Receives webhooks and records each event exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub flags: Flags,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Migrate the store if needed, then serve HTTP (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Copy the live SQLite database to PATH (never overwriting it) while a server keeps
    /// serving, check the copy and print its size. On PostgreSQL: use pg_dump.
    Backup {
        /// The file to create.
        path: PathBuf,
    },
    /// Browse recorded events.
    #[command(subcommand)]
    Events(crate::cli::events::EventsCommand),
    /// Every matching event as JSON lines on stdout.
    Export(crate::cli::export::ExportArgs),
    /// Feed exported JSON lines (a file, or - for stdin) through the idempotent step.
    Import(crate::cli::import::ImportArgs),
    /// Clear stored payloads older than a duration; keys, fingerprints and counts stay.
    Prune(crate::cli::prune::PruneArgs),
}

/// Every setting that has a flag. Unset flags fall through to the TOML file.
#[derive(Debug, Default, Clone, Args)]
pub struct Flags {
    /// TOML settings file.
    #[arg(long, env = "HOOKLATCH_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8000].
    #[arg(long, env = "HOOKLATCH_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// sqlite://PATH, sqlite::memory:, postgres://… or postgresql://… [default: sqlite://hooklatch.db].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    pub database_url: Option<String>,
    /// Largest accepted body in bytes [default: 1048576].
    #[arg(long, env = "HOOKLATCH_MAX_BODY_BYTES", global = true)]
    pub max_body_bytes: Option<u64>,
    /// Answer to a reused event id with a different payload: accept (202) or reject (409) [default: accept].
    #[arg(long, env = "HOOKLATCH_ON_CONFLICT", global = true)]
    pub on_conflict: Option<OnConflict>,
    /// Store connections in the pool [default: 16].
    #[arg(long, env = "HOOKLATCH_POOL_SIZE", global = true)]
    pub pool_size: Option<u32>,
    /// Seconds to wait for a store connection at startup and per request [default: 5].
    #[arg(long, env = "HOOKLATCH_CONNECT_TIMEOUT", global = true)]
    pub connect_timeout: Option<u64>,
    /// Seconds a request may wait on a store lock or statement before a 503 [default: 5].
    #[arg(long, env = "HOOKLATCH_STORE_TIMEOUT", global = true)]
    pub store_timeout: Option<u64>,
    /// Seconds a client may take to send its body before a 408 [default: 10].
    #[arg(long, env = "HOOKLATCH_BODY_TIMEOUT", global = true)]
    pub body_timeout: Option<u64>,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT [default: 30].
    #[arg(long, env = "HOOKLATCH_SHUTDOWN_GRACE", global = true)]
    pub shutdown_grace: Option<u64>,
    /// SQLite durability: full (survives power loss) or normal (survives a crash) [default: full].
    #[arg(long, env = "HOOKLATCH_SQLITE_SYNCHRONOUS", global = true)]
    pub sqlite_synchronous: Option<SqliteSynchronous>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// 202 with `"status":"conflict"`: providers stop retrying, the original stands.
    #[default]
    Accept,
    /// 409: for operators who want the sender to notice.
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSynchronous {
    #[default]
    Full,
    Normal,
}

/// The TOML file. Unknown keys are an error, so a typo never silently drops a secret.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    max_body_bytes: Option<u64>,
    on_conflict: Option<OnConflict>,
    pool_size: Option<u32>,
    connect_timeout: Option<u64>,
    store_timeout: Option<u64>,
    body_timeout: Option<u64>,
    shutdown_grace: Option<u64>,
    sqlite_synchronous: Option<SqliteSynchronous>,
    #[serde(default)]
    sources: HashMap<String, FileSource>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSource {
    preset: Option<String>,
    #[serde(default)]
    secrets: Vec<String>,
    // `generic` only:
    signature_header: Option<String>,
    encoding: Option<Encoding>,
    prefix: Option<String>,
    id_header: Option<String>,
    id_pointer: Option<String>,
}

/// Where events are stored.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    SqliteMemory,
    Postgres(String),
}

impl DatabaseUrl {
    pub const ACCEPTED: &'static str =
        "sqlite://PATH, sqlite::memory:, postgres://USER@HOST/DB or postgresql://USER@HOST/DB";

    pub fn parse(url: &str) -> Result<DatabaseUrl, ConfigError> {
        if url == "sqlite::memory:" {
            Ok(DatabaseUrl::SqliteMemory)
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(ConfigError(format!(
                    "DATABASE_URL {url:?} names no file; accepted forms: {}",
                    Self::ACCEPTED
                )));
            }
            Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else {
            Err(ConfigError(format!(
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

/// `scheme://user:secret@host` → `scheme://user:***@host`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// A setting that cannot be used; startup prints it on one line and exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// How one source is checked and read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSettings {
    pub preset: Preset,
    /// Empty: unsigned deliveries are accepted. Otherwise any one must verify.
    pub secrets: Vec<String>,
}

/// Per-source settings from the TOML file and `HOOKLATCH_SECRET_<SOURCE>` variables.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    configured: HashMap<String, SourceSettings>,
    /// `HOOKLATCH_SECRET_<SOURCE>` values by their variable suffix (`MY_SHOP`), looked up
    /// per request because any source name may receive deliveries.
    env_secrets: HashMap<String, Vec<String>>,
}

impl Sources {
    /// The settings for `source`: configured, else its preset by name, with secrets from
    /// the environment taking precedence over the file.
    pub fn settings(&self, source: &Source) -> SourceSettings {
        let mut settings = self
            .configured
            .get(source.as_str())
            .cloned()
            .unwrap_or_else(|| SourceSettings {
                preset: Preset::for_source(source.as_str()),
                secrets: Vec::new(),
            });
        if let Some(secrets) = self.env_secrets.get(&env_suffix(source.as_str())) {
            settings.secrets = secrets.clone();
        }
        settings
    }

    /// Adds or replaces one source's settings (tests, embedding).
    pub fn insert(&mut self, name: &str, settings: SourceSettings) {
        self.configured.insert(name.to_owned(), settings);
    }

    /// A source the operator configured, or a preset's name.
    pub fn is_known(&self, source: &Source) -> bool {
        self.configured.contains_key(source.as_str())
            || Preset::named(source.as_str()).is_some()
            || self.env_secrets.contains_key(&env_suffix(source.as_str()))
    }

    /// Sources that accept unsigned deliveries, among those configured and the presets.
    pub fn unsigned(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .configured
            .keys()
            .cloned()
            .chain(["refersion", "shopify", "stripe", "github"].map(String::from))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter(|name| {
                Source::parse(name).is_some_and(|source| self.settings(&source).secrets.is_empty())
            })
            .collect()
    }
}

fn env_suffix(source: &str) -> String {
    source.to_ascii_uppercase().replace('-', "_")
}

/// Everything the service needs, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub max_body_bytes: u64,
    pub on_conflict: OnConflict,
    pub store: StoreOptions,
    pub body_timeout: Duration,
    pub shutdown_grace: Duration,
    pub sources: Sources,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: DatabaseUrl::Sqlite(PathBuf::from("hooklatch.db")),
            max_body_bytes: 1024 * 1024,
            on_conflict: OnConflict::Accept,
            store: StoreOptions::default(),
            body_timeout: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            sources: Sources::default(),
        }
    }
}

impl Config {
    /// Resolves flags (already merged with the environment by clap), the TOML file they
    /// name, `HOOKLATCH_SECRET_*` variables and defaults.
    pub fn load(
        flags: &Flags,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let file = match &flags.config {
            None => FileSettings::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", path.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    ConfigError(format!("config file {}: {}", path.display(), e.message()))
                })?
            }
        };
        let defaults = Config::default();
        let secs = Duration::from_secs;
        let database_url = match flags.database_url.as_ref().or(file.database_url.as_ref()) {
            Some(url) => DatabaseUrl::parse(url)?,
            None => defaults.database_url,
        };
        let max_body_bytes = flags
            .max_body_bytes
            .or(file.max_body_bytes)
            .unwrap_or(defaults.max_body_bytes);
        if max_body_bytes == 0 {
            return Err(ConfigError("max_body_bytes must be at least 1".into()));
        }
        let store = StoreOptions {
            pool_size: flags
                .pool_size
                .or(file.pool_size)
                .unwrap_or(defaults.store.pool_size)
                .max(1),
            connect_timeout: flags
                .connect_timeout
                .or(file.connect_timeout)
                .map(secs)
                .unwrap_or(defaults.store.connect_timeout),
            statement_timeout: flags
                .store_timeout
                .or(file.store_timeout)
                .map(secs)
                .unwrap_or(defaults.store.statement_timeout),
            sqlite_full_sync: flags
                .sqlite_synchronous
                .or(file.sqlite_synchronous)
                .unwrap_or_default()
                == SqliteSynchronous::Full,
        };
        let mut sources = Sources::default();
        for (name, source) in file.sources {
            let settings = source_settings(&name, source)?;
            sources.configured.insert(name, settings);
        }
        for (key, value) in env {
            if let Some(suffix) = key.strip_prefix("HOOKLATCH_SECRET_") {
                let secrets: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                sources.env_secrets.insert(suffix.to_owned(), secrets);
            }
        }
        validate_secrets(&sources)?;
        Ok(Config {
            listen: flags.listen.or(file.listen).unwrap_or(defaults.listen),
            database_url,
            max_body_bytes,
            on_conflict: flags.on_conflict.or(file.on_conflict).unwrap_or_default(),
            store,
            body_timeout: flags
                .body_timeout
                .or(file.body_timeout)
                .map(secs)
                .unwrap_or(defaults.body_timeout),
            shutdown_grace: flags
                .shutdown_grace
                .or(file.shutdown_grace)
                .map(secs)
                .unwrap_or(defaults.shutdown_grace),
            sources,
        })
    }
}

fn source_settings(name: &str, source: FileSource) -> Result<SourceSettings, ConfigError> {
    if Source::parse(name).is_none() {
        return Err(ConfigError(format!(
            "[sources.{name}]: a source name is 1-64 characters of a-z, 0-9, _ and -"
        )));
    }
    let preset_name = source
        .preset
        .clone()
        .unwrap_or_else(|| Preset::for_source(name).name().to_owned());
    let preset = match preset_name.as_str() {
        "generic" => {
            let signature_header = source.signature_header.ok_or_else(|| {
                ConfigError(format!("[sources.{name}]: the generic preset needs signature_header"))
            })?;
            let id = match (source.id_header, source.id_pointer) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError(format!("[sources.{name}]: set id_header or id_pointer, not both")));
                }
                (Some(header), None) => Some(IdLocation::Header(header)),
                (None, Some(pointer)) if pointer.starts_with('/') => Some(IdLocation::Pointer(pointer)),
                (None, Some(pointer)) => {
                    return Err(ConfigError(format!("[sources.{name}]: id_pointer {pointer:?} must start with /")));
                }
                (None, None) => None,
            };
            Preset::Generic(GenericScheme {
                signature_header,
                encoding: source.encoding.unwrap_or(Encoding::Hex),
                prefix: source.prefix,
                id,
            })
        }
        other => Preset::named(other).ok_or_else(|| {
            ConfigError(format!(
                "[sources.{name}]: unknown preset {other:?}; use refersion, shopify, stripe, github, standard or generic"
            ))
        })?,
    };
    Ok(SourceSettings {
        preset,
        secrets: source.secrets,
    })
}

/// A Standard Webhooks secret that does not decode would reject every delivery; say so
/// at startup instead.
fn validate_secrets(sources: &Sources) -> Result<(), ConfigError> {
    for (name, settings) in &sources.configured {
        let undecodable = settings
            .secrets
            .iter()
            .find(|s| standard_secret_key(s).is_none());
        if let (Preset::Standard, Some(bad)) = (&settings.preset, undecodable) {
            let shown: String = bad.chars().take(6).collect();
            return Err(ConfigError(format!(
                "[sources.{name}]: Standard Webhooks secrets are whsec_ followed by base64; {shown}… is not"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://hooklatch.db").unwrap(),
            DatabaseUrl::Sqlite("hooklatch.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/lib/h.db").unwrap(),
            DatabaseUrl::Sqlite("/var/lib/h.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap(),
            DatabaseUrl::SqliteMemory
        );
        assert!(matches!(
            DatabaseUrl::parse("postgresql://u@h/db").unwrap(),
            DatabaseUrl::Postgres(_)
        ));
        for bad in ["mysql://x", "hooklatch.db", "sqlite://", "postgres:/x", ""] {
            let err = DatabaseUrl::parse(bad).unwrap_err();
            assert!(err.0.contains("sqlite://PATH"), "{err}");
        }
        let err = DatabaseUrl::parse("mysql://root:hunter2@db/x").unwrap_err();
        assert!(!err.0.contains("hunter2"), "{err}");
        let pg = DatabaseUrl::parse("postgres://app:hunter2@db:5432/x").unwrap();
        assert_eq!(format!("{pg:?}"), "postgres://app:***@db:5432/x");
    }

    fn load(flags: Flags, toml: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hooklatch.toml");
        std::fs::write(&path, toml).unwrap();
        let flags = Flags {
            config: Some(path),
            ..flags
        };
        Config::load(
            &flags,
            env.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let toml = "listen = \"127.0.0.1:9000\"\nmax_body_bytes = 10\non_conflict = \"reject\"\n";
        let from_file = load(Flags::default(), toml, &[]).unwrap();
        assert_eq!(from_file.listen.port(), 9000);
        assert_eq!(from_file.max_body_bytes, 10);
        assert_eq!(from_file.on_conflict, OnConflict::Reject);
        assert_eq!(
            from_file.database_url,
            DatabaseUrl::Sqlite("hooklatch.db".into())
        );

        let flags = Flags {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            on_conflict: Some(OnConflict::Accept),
            ..Flags::default()
        };
        let overridden = load(flags, toml, &[]).unwrap();
        assert_eq!(overridden.listen.port(), 9100);
        assert_eq!(overridden.on_conflict, OnConflict::Accept);
        assert_eq!(overridden.max_body_bytes, 10);
    }

    #[test]
    fn source_presets_and_secrets() {
        let toml = r#"
[sources.shop-eu]
preset = "shopify"
secrets = ["a", "b"]

[sources.woo]
preset = "generic"
signature_header = "X-WC-Webhook-Signature"
encoding = "base64"
id_pointer = "/id"
"#;
        let config = load(
            Flags::default(),
            toml,
            &[
                ("HOOKLATCH_SECRET_STRIPE", "whsec_1, whsec_2"),
                ("HOOKLATCH_SECRET_WOO", "w"),
            ],
        )
        .unwrap();
        let shop = config.sources.settings(&Source::parse("shop-eu").unwrap());
        assert_eq!(shop.preset, Preset::Shopify);
        assert_eq!(shop.secrets, ["a", "b"]);
        let stripe = config.sources.settings(&Source::parse("stripe").unwrap());
        assert_eq!(stripe.preset, Preset::Stripe);
        assert_eq!(stripe.secrets, ["whsec_1", "whsec_2"]);
        let woo = config.sources.settings(&Source::parse("woo").unwrap());
        assert!(matches!(woo.preset, Preset::Generic(_)));
        assert_eq!(woo.secrets, ["w"]);
        let other = config.sources.settings(&Source::parse("acme").unwrap());
        assert_eq!(other.preset, Preset::Standard);
        assert!(other.secrets.is_empty());
        assert_eq!(
            config.sources.unsigned(),
            ["github", "refersion", "shopify"]
        );
    }

    #[test]
    fn bad_files_are_one_clear_error() {
        assert!(
            load(Flags::default(), "lisen = \"x\"", &[])
                .unwrap_err()
                .0
                .contains("lisen")
        );
        assert!(
            load(Flags::default(), "[sources.x]\npreset = \"paypal\"", &[])
                .unwrap_err()
                .0
                .contains("unknown preset")
        );
        assert!(
            load(Flags::default(), "[sources.x]\npreset = \"generic\"", &[])
                .unwrap_err()
                .0
                .contains("signature_header")
        );
        assert!(
            load(
                Flags::default(),
                "[sources.x]\nsecrets = [\"not base64!\"]",
                &[]
            )
            .unwrap_err()
            .0
            .contains("whsec_")
        );
        assert!(
            load(Flags::default(), "database_url = \"mysql://x\"", &[])
                .unwrap_err()
                .0
                .contains("sqlite://PATH")
        );
    }
}
