//! Settings, each declared once in [`Settings`]: its flag, environment variable, TOML key
//! (the field name), default, help text and validation are the clap attributes of one
//! field. Precedence is flag, then environment, then the TOML file, then the default.
//!
//! clap reads flags and applies defaults; the layers below the flags are folded in by
//! [`Cli::load`] as *defaults* of the declared arguments (an environment value replaces a
//! file value, which replaces the declared default), so clap still parses and validates
//! every value with the one declared parser, wherever it came from. The environment is
//! passed in rather than read by clap, so tests never race on the process environment.
//!
//! Per-source settings live in `[sources.<name>]` tables ([`FileSource`]) and in
//! `HOOKLATCH_SECRET_<SOURCE>` / `HOOKLATCH_FORWARD_TO_<SOURCE>` variables.
//! `DatabaseUrl::parse` is the one place a backend is chosen.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use serde::Deserialize;

use crate::sources::standard_secret_key;
use crate::store::StoreOptions;

mod redact;
mod sources;

pub use redact::redact;
pub use sources::{
    FORWARD_TO_PREFIX, SECRET_PREFIX, SOURCE_KEYS, SourceKey, SourceSettings, Sources,
    secret_variable,
};

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
    pub settings: Settings,
}

/// Each lane adds its variants here and dispatches them in `main.rs`, one arm each.
/// (No `Copy`/`PartialEq`, so variants may carry any arguments.)
#[derive(Debug, Clone, Subcommand)]
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
    /// Forwarding to your app: queue events again.
    #[command(subcommand)]
    Forward(ForwardCommand),
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum ForwardCommand {
    /// Queue forwards again now, with a fresh retry schedule: every failed one
    /// (--failed), every one of a source (--source S), or the failed ones of a source.
    Retry {
        /// Only this source's events.
        #[arg(long)]
        source: Option<String>,
        /// Only events whose forwarding gave up (state failed).
        #[arg(long)]
        failed: bool,
    },
}

/// Every setting, declared once. The TOML key is the field name; the README's settings
/// table is checked against this declaration by a test (`readme_table_matches_the_declaration`).
/// Secrets have a hidden flag that is refused: a command line is visible to every user.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// TOML settings file.
    #[arg(long, env = "HOOKLATCH_CONFIG", global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen address; on a non-loopback address, sources without a secret refuse deliveries
    #[arg(
        long,
        env = "HOOKLATCH_LISTEN",
        global = true,
        value_name = "ADDR",
        default_value = "127.0.0.1:8000"
    )]
    pub listen: SocketAddr,
    /// Store: `sqlite://PATH`, `sqlite::memory:`, `postgres://…` or `postgresql://…`
    #[arg(long, env = "DATABASE_URL", global = true, value_name = "URL", hide_env_values = true,
          default_value = "sqlite://hooklatch.db", value_parser = DatabaseUrl::parse)]
    pub database_url: DatabaseUrl,
    /// Body limit (bytes)
    #[arg(long, env = "HOOKLATCH_MAX_BODY_BYTES", global = true, value_name = "BYTES",
          default_value = "1048576", value_parser = at_least_one::<u64>)]
    pub max_body_bytes: u64,
    /// Answer to a conflict: `accept` (202) or `reject` (409)
    #[arg(
        long,
        env = "HOOKLATCH_ON_CONFLICT",
        global = true,
        default_value = "accept"
    )]
    pub on_conflict: OnConflict,
    /// Store connections in the pool
    #[arg(long, env = "HOOKLATCH_POOL_SIZE", global = true, value_name = "N",
          default_value = "16", value_parser = at_least_one::<u32>)]
    pub pool_size: u32,
    /// Connect timeout (s)
    #[arg(long, env = "HOOKLATCH_CONNECT_TIMEOUT", global = true, value_name = "SECS",
          default_value = "5", value_parser = seconds)]
    pub connect_timeout: Duration,
    /// Store timeout (s): the longest a request waits for the store (queue, pool, lock and statement together) before it gets a 503
    #[arg(long, env = "HOOKLATCH_STORE_TIMEOUT", global = true, value_name = "SECS",
          default_value = "5", value_parser = seconds)]
    pub store_timeout: Duration,
    /// Body timeout (s): the longest a client may take to send its body before it gets a 408
    #[arg(long, env = "HOOKLATCH_BODY_TIMEOUT", global = true, value_name = "SECS",
          default_value = "10", value_parser = seconds)]
    pub body_timeout: Duration,
    /// Shutdown grace (s): how long requests in flight may finish after SIGTERM
    #[arg(long, env = "HOOKLATCH_SHUTDOWN_GRACE", global = true, value_name = "SECS",
          default_value = "30", value_parser = seconds)]
    pub shutdown_grace: Duration,
    /// SQLite durability: `full` survives power loss, `normal` only a process crash
    #[arg(
        long,
        env = "HOOKLATCH_SQLITE_SYNCHRONOUS",
        global = true,
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSynchronous,
    /// Accept unsigned deliveries on every source without a secret, even off loopback
    #[arg(long, env = "HOOKLATCH_ALLOW_UNSIGNED", global = true, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unsigned: bool,
    /// Admin API and console token (at least 16 characters); without one, `/admin` is 404
    #[arg(long, env = "HOOKLATCH_ADMIN_TOKEN", global = true, hide = true, hide_env_values = true,
          value_parser = AdminToken::parse)]
    pub admin_token: Option<AdminToken>,
    /// Clear stored payloads older than this, hourly (`90d`, `12h`, `30m`)
    #[arg(long, env = "HOOKLATCH_PAYLOAD_RETENTION", global = true, value_name = "AGE",
          value_parser = parse_age)]
    pub payload_retention: Option<Duration>,
    /// Log format: `text` or `json` (one object per line)
    #[arg(
        long,
        env = "HOOKLATCH_LOG_FORMAT",
        global = true,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Key signing forwarded requests: `whsec_` followed by base64
    #[arg(long, env = "HOOKLATCH_FORWARD_SECRET", global = true, hide = true, hide_env_values = true,
          value_parser = ForwardSecret::parse)]
    pub forward_secret: Option<ForwardSecret>,
    /// Forward timeout (s): a forward is delivered by a 2xx within it
    #[arg(long, env = "HOOKLATCH_FORWARD_TIMEOUT", global = true, value_name = "SECS",
          default_value = "10", value_parser = seconds)]
    pub forward_timeout: Duration,
    /// First forward retry after (s), doubling with ±20 % jitter
    #[arg(long, env = "HOOKLATCH_FORWARD_RETRY_INITIAL", global = true, value_name = "SECS",
          default_value = "5", value_parser = seconds)]
    pub forward_retry_initial: Duration,
    /// Longest wait between forward retries (s)
    #[arg(long, env = "HOOKLATCH_FORWARD_RETRY_MAX", global = true, value_name = "SECS",
          default_value = "3600", value_parser = seconds)]
    pub forward_retry_max: Duration,
    /// Forward attempts before an event is `failed`
    #[arg(long, env = "HOOKLATCH_FORWARD_MAX_ATTEMPTS", global = true, value_name = "N",
          default_value = "20", value_parser = at_least_one::<u32>)]
    pub forward_max_attempts: u32,
    /// Forward requests in flight per instance
    #[arg(long, env = "HOOKLATCH_FORWARD_CONCURRENCY", global = true, value_name = "N",
          default_value = "8", value_parser = at_least_one::<usize>)]
    pub forward_concurrency: usize,
}

/// Settings that only make sense outside the file (the file's own path).
const NOT_IN_FILE: &[&str] = &["config", "help", "version"];

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured only on a terminal.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `message` and the fields.
    Json,
}

/// A decoded Standard Webhooks key (`whsec_` + base64). Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ForwardSecret(pub Vec<u8>);

impl ForwardSecret {
    fn parse(text: &str) -> Result<ForwardSecret, String> {
        text.strip_prefix("whsec_")
            .and_then(|_| standard_secret_key(text))
            .map(ForwardSecret)
            .ok_or_else(|| "must be whsec_ followed by base64 (the value is not shown)".into())
    }
}

impl fmt::Debug for ForwardSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ForwardSecret(***)")
    }
}

/// A whole number of at least 1 (sizes, counts).
fn at_least_one<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8>,
    T::Err: fmt::Display,
{
    let value: T = text.trim().parse().map_err(|e| format!("{e}"))?;
    if value < T::from(1) {
        return Err("must be at least 1".into());
    }
    Ok(value)
}

/// Seconds, fractions allowed; zero or negative is refused (a zero connect timeout
/// panics in r2d2, a zero statement timeout turns PostgreSQL's off).
fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if secs.is_nan() || secs <= 0.0 {
        return Err("must be a positive number of seconds".into());
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text} seconds is too long"))
}

/// `90d`, `12h` or `30m`: a positive whole number and a unit. Also used by `prune`.
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let usage = || format!("{text:?} is not an age: use a number and d, h or m, e.g. 90d");
    let text = text.trim();
    let unit = match text.chars().last() {
        Some('d') => 86_400,
        Some('h') => 3_600,
        Some('m') => 60,
        _ => return Err(usage()),
    };
    let count: u64 = text[..text.len() - 1].parse().map_err(|_| usage())?;
    if count == 0 {
        return Err("must be positive".into());
    }
    count
        .checked_mul(unit)
        .map(Duration::from_secs)
        .ok_or_else(usage)
}

/// The admin token as parsed; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(pub String);

impl AdminToken {
    fn parse(text: &str) -> Result<AdminToken, String> {
        if text.chars().count() < 16 {
            return Err("must be at least 16 characters (the value is not shown)".into());
        }
        Ok(AdminToken(text.to_owned()))
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(***)")
    }
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

/// A setting that cannot be used; startup prints it on one line and exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// Why [`Cli::load`] did not produce settings.
#[derive(Debug)]
pub enum LoadError {
    /// `--help` or `--version`: print it and exit 0 (`clap::Error::exit`).
    Display(clap::Error),
    /// Anything else: one line, exit 1.
    Invalid(ConfigError),
}

impl From<ConfigError> for LoadError {
    fn from(error: ConfigError) -> Self {
        LoadError::Invalid(error)
    }
}

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
            .finish()
    }
}

/// Everything the service needs, resolved. Its `Debug` never shows a secret.
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: DatabaseUrl,
    pub max_body_bytes: u64,
    pub on_conflict: OnConflict,
    pub store: StoreOptions,
    pub body_timeout: Duration,
    pub shutdown_grace: Duration,
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
            .field("database_url", &self.database_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("on_conflict", &self.on_conflict)
            .field("store", &self.store)
            .field("body_timeout", &self.body_timeout)
            .field("shutdown_grace", &self.shutdown_grace)
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
        let matches = declared_command()
            .try_get_matches_from(["hooklatch"])
            .expect("the declared defaults parse");
        let settings = Settings::from_arg_matches(&matches).expect("the declared defaults parse");
        Config::resolve(settings, Sources::default())
    }
}

impl Config {
    /// Shapes resolved settings into what the service uses. Every value was validated
    /// on its own by its parser; only checks across settings are left.
    fn resolve(s: Settings, mut sources: Sources) -> Config {
        sources.serving_on(s.listen, s.allow_unsigned);
        Config {
            listen: s.listen,
            database_url: s.database_url,
            max_body_bytes: s.max_body_bytes,
            on_conflict: s.on_conflict,
            store: StoreOptions {
                pool_size: s.pool_size,
                connect_timeout: s.connect_timeout,
                statement_timeout: s.store_timeout,
                sqlite_full_sync: s.sqlite_synchronous == SqliteSynchronous::Full,
            },
            body_timeout: s.body_timeout,
            shutdown_grace: s.shutdown_grace,
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
            },
        }
    }
}

/// The declaration as clap parses it, with clap's own environment reading turned off:
/// [`Cli::load`] applies the environment it is given. (`Cli::command()` still has the
/// variable names; clap reads their values when it is built, which is harmless there.)
fn declared_command() -> clap::Command {
    Cli::command().mut_args(|arg| arg.env(None::<&str>))
}

/// Arguments that are settings: every long option of the top level but help and version.
fn setting_args(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| {
        arg.get_long().is_some() && !matches!(arg.get_id().as_str(), "help" | "version")
    })
}

/// Where a value below the flags came from, to name it in an error.
enum Origin {
    Env(String),
    File(PathBuf),
}

impl Cli {
    /// Parses the command line and resolves every setting: flag, then `env`, then the
    /// TOML file (`--config` / `HOOKLATCH_CONFIG`), then the declared default.
    pub fn load<T: Into<OsString> + Clone>(
        args: impl IntoIterator<Item = T>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<(Cli, Config), LoadError> {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let env = utf8_env(env)?;
        let command = declared_command();

        // Flags alone first: help, version and bad flags are answered from the
        // declaration as written, and --config is known.
        let flags = command
            .clone()
            .try_get_matches_from(&args)
            .map_err(|error| {
                match error.kind() {
                    clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayVersion
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                        // Render help with the environment names shown but never their values.
                        let help = Cli::command()
                            .mut_args(|arg| arg.hide_env_values(true))
                            .try_get_matches_from(&args)
                            .err()
                            .unwrap_or(error);
                        LoadError::Display(help)
                    }
                    _ => LoadError::Invalid(one_line(&error)),
                }
            })?;
        for arg in setting_args(&Cli::command()) {
            if arg.is_hide_set()
                && flags.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine)
            {
                let env = arg
                    .get_env()
                    .map(|e| e.to_string_lossy())
                    .unwrap_or_default();
                return Err(ConfigError(format!(
                    "--{} would be visible to every user of this machine; set {env} or {} in the file",
                    arg.get_long().unwrap_or_default(),
                    arg.get_id()
                ))
                .into());
            }
        }

        // The layers below the flags become the arguments' defaults: file, then env.
        let config_path = Settings::from_arg_matches(&flags)
            .ok()
            .and_then(|s| s.config)
            .or_else(|| env.get("HOOKLATCH_CONFIG").map(PathBuf::from));
        let mut layered: HashMap<String, (String, Origin)> = HashMap::new();
        let mut file_sources = toml::Table::new();
        if let Some(path) = &config_path {
            let mut table = read_file(path)?;
            if let Some(sources) = table.remove("sources") {
                file_sources = match sources {
                    toml::Value::Table(table) => table,
                    _ => {
                        return Err(file_error(
                            path,
                            "sources must be a table of [sources.<name>]",
                        )
                        .into());
                    }
                };
            }
            for (key, value) in table {
                let known = setting_args(&command).any(|arg| {
                    arg.get_id().as_str() == key && !NOT_IN_FILE.contains(&key.as_str())
                });
                if !known {
                    return Err(file_error(
                        path,
                        &format!("unknown key `{key}`; known keys: {}", file_keys(&command)),
                    )
                    .into());
                }
                let text = match value {
                    toml::Value::String(text) => text,
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(n) => n.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        return Err(
                            file_error(path, &format!("{key} must be a single value")).into()
                        );
                    }
                };
                layered.insert(key, (text, Origin::File(path.clone())));
            }
        }
        for arg in setting_args(&Cli::command()) {
            let Some(name) = arg.get_env().map(|e| e.to_string_lossy().into_owned()) else {
                continue;
            };
            if let Some(value) = env.get(&name) {
                layered.insert(arg.get_id().to_string(), (value.clone(), Origin::Env(name)));
            }
        }
        layered.remove("config");

        let mut layered_command = command.clone();
        for (id, (value, origin)) in layered {
            let arg = setting_args(&command)
                .find(|arg| arg.get_id().as_str() == id)
                .expect("layered keys are declared settings");
            check_value(arg, &value, &origin)?;
            layered_command = layered_command.mut_arg(&id, |arg| arg.default_value(value));
        }
        let matches = layered_command
            .try_get_matches_from(&args)
            .map_err(|error| LoadError::Invalid(one_line(&error)))?;
        let cli = Cli::from_arg_matches(&matches)
            .map_err(|error| LoadError::Invalid(one_line(&error)))?;

        let sources = sources::load(file_sources, config_path.as_deref(), &env)?;
        let config = Config::resolve(cli.settings.clone(), sources);
        if config.forward.retry_initial > config.forward.retry_max {
            return Err(ConfigError(
                "forward_retry_initial must not exceed forward_retry_max".into(),
            )
            .into());
        }
        Ok((cli, config))
    }
}

/// The environment as text. Only the variables hooklatch reads must be UTF-8.
fn utf8_env(
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<HashMap<String, String>, ConfigError> {
    let mut out = HashMap::new();
    for (key, value) in env {
        let Ok(key) = key.into_string() else { continue };
        if !(key.starts_with("HOOKLATCH_") || key == "DATABASE_URL") {
            continue;
        }
        let value = value
            .into_string()
            .map_err(|_| ConfigError(format!("{key} is not valid UTF-8")))?;
        out.insert(key, value);
    }
    Ok(out)
}

fn read_file(path: &std::path::Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
    toml::from_str(&text).map_err(|e| file_error(path, e.message()))
}

fn file_error(path: &std::path::Path, message: &str) -> ConfigError {
    ConfigError(format!("config file {}: {message}", path.display()))
}

fn file_keys(command: &clap::Command) -> String {
    let mut keys: Vec<&str> = setting_args(command)
        .map(|arg| arg.get_id().as_str())
        .filter(|key| !NOT_IN_FILE.contains(key))
        .collect();
    keys.push("sources");
    keys.join(", ")
}

/// Validates one value from the file or the environment with the setting's own parser,
/// so the error can say where the value came from. Secret values are never echoed.
fn check_value(arg: &Arg, value: &str, origin: &Origin) -> Result<(), ConfigError> {
    let long = arg.get_long().unwrap_or_default();
    let probe = clap::Command::new("hooklatch").no_binary_name(true).arg(
        Arg::new(arg.get_id().clone())
            .long(long.to_owned())
            .action(ArgAction::Set)
            .value_parser(arg.get_value_parser().clone()),
    );
    let Err(error) = probe.try_get_matches_from([format!("--{long}={value}")]) else {
        return Ok(());
    };
    let reason = match std::error::Error::source(&error) {
        Some(cause) => cause.to_string(),
        None if arg.is_hide_env_values_set() => "invalid value".to_owned(),
        None => one_line(&error).0,
    };
    let shown = if arg.is_hide_env_values_set() {
        String::new()
    } else {
        format!(" = {value:?}")
    };
    Err(ConfigError(match origin {
        Origin::Env(name) => format!("{name}{shown}: {reason}"),
        Origin::File(path) => format!(
            "config file {}: {}{shown}: {reason}",
            path.display(),
            arg.get_id()
        ),
    }))
}

/// A clap error as one line (startup errors are one line and exit 1). A value the
/// parser refused is not echoed: it may be a URL with a password.
fn one_line(error: &clap::Error) -> ConfigError {
    let arg = error.get(clap::error::ContextKind::InvalidArg);
    if let (Some(arg), Some(cause)) = (arg, std::error::Error::source(error)) {
        return ConfigError(format!("{arg}: {cause}"));
    }
    let rendered = error.render().to_string();
    let text = rendered
        .lines()
        .map(str::trim)
        .filter(|line| {
            !line.is_empty()
                && !line.starts_with("For more information")
                && !line.starts_with("Usage:")
        })
        .collect::<Vec<_>>()
        .join(" ");
    ConfigError(text.trim_start_matches("error: ").to_owned())
}

/// The README's settings table, generated from the declaration.
pub fn settings_table() -> String {
    let command = Cli::command();
    let code = |text: &str| format!("`{text}`");
    let mut rows = vec![
        "| setting | flag | environment | TOML key | default |".to_owned(),
        "|---|---|---|---|---|".to_owned(),
    ];
    for arg in setting_args(&command).filter(|arg| !NOT_IN_FILE.contains(&arg.get_id().as_str())) {
        let flag = match (arg.is_hide_set(), arg.get_long()) {
            (false, Some(long)) => code(&format!("--{long}")),
            _ => "–".to_owned(),
        };
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| code(&v.to_string_lossy()))
            .collect();
        rows.push(format!(
            "| {} | {flag} | {} | {} | {} |",
            arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
            arg.get_env()
                .map_or("–".to_owned(), |e| code(&e.to_string_lossy())),
            code(arg.get_id().as_str()),
            if defaults.is_empty() {
                "none".to_owned()
            } else {
                defaults.join(", ")
            },
        ));
    }
    for key in SOURCE_KEYS {
        rows.push(format!(
            "| {} | – | {} | {} | {} |",
            key.about,
            key.env.map_or("–".to_owned(), code),
            code(&format!("[sources.<name>] {}", key.key)),
            key.default,
        ));
    }
    rows.join("\n")
}

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
