//! The declaration: every setting once, as one clap field. Its flag, environment
//! variable, TOML key (the field name), default, help text and parser are that field's
//! attributes; the layering and the README table read them from here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Arg, ArgAction, Args};

use super::values::{
    AdminToken, AlertUrl, ForwardSecret, LogFormat, OnConflict, SqliteSynchronous, alert_url,
    at_least_one, parse_age, seconds,
};
use crate::store::DatabaseUrl;

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
    #[command(flatten)]
    pub https: super::https::HttpsSettings,
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
    /// Body timeout (s): the longest a client may take to send its body before it gets a 408; a request head, and a connection with no request in flight, get as long
    #[arg(long, env = "HOOKLATCH_BODY_TIMEOUT", global = true, value_name = "SECS",
          default_value = "10", value_parser = seconds)]
    pub body_timeout: Duration,
    /// Shutdown grace (s): how long requests in flight may finish after SIGTERM
    #[arg(long, env = "HOOKLATCH_SHUTDOWN_GRACE", global = true, value_name = "SECS",
          default_value = "30", value_parser = seconds)]
    pub shutdown_grace: Duration,
    /// Open connections at most; past it new connections wait to be accepted until one closes
    #[arg(long, env = "HOOKLATCH_MAX_CONNECTIONS", global = true, value_name = "N",
          default_value = "512", value_parser = at_least_one::<usize>)]
    pub max_connections: usize,
    /// Requests in flight at most (all connections); past it a request gets 503 with Retry-After
    #[arg(long, env = "HOOKLATCH_MAX_REQUESTS", global = true, value_name = "N",
          default_value = "256", value_parser = at_least_one::<usize>)]
    pub max_requests: usize,
    /// HTTP/2 keep-alive (s): a ping after this long without a frame from the client
    #[arg(long, env = "HOOKLATCH_HTTP2_KEEPALIVE_INTERVAL", global = true, value_name = "SECS",
          default_value = "20", value_parser = seconds)]
    pub http2_keepalive_interval: Duration,
    /// HTTP/2 keep-alive timeout (s): a connection whose client does not answer the ping within this is closed
    #[arg(long, env = "HOOKLATCH_HTTP2_KEEPALIVE_TIMEOUT", global = true, value_name = "SECS",
          default_value = "20", value_parser = seconds)]
    pub http2_keepalive_timeout: Duration,
    /// SQLite durability: `full` survives power loss, `normal` only a process crash
    #[arg(
        long,
        env = "HOOKLATCH_SQLITE_SYNCHRONOUS",
        global = true,
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSynchronous,
    /// PostgreSQL: `false` sends every statement unnamed and no startup `options`, for a transaction pooler (PgBouncer 1.18)
    #[arg(long, env = "HOOKLATCH_PG_PREPARED_STATEMENTS", global = true, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub pg_prepared_statements: bool,
    /// Accept unsigned deliveries on every source without a secret, even off loopback
    #[arg(long, env = "HOOKLATCH_ALLOW_UNSIGNED", global = true, value_name = "BOOL",
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "false", action = ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unsigned: bool,
    /// Admin API and console token (at least 16 characters); without one, `/admin` is 404
    #[arg(long, env = "HOOKLATCH_ADMIN_TOKEN", global = true, hide = true, hide_env_values = true,
          value_parser = AdminToken::parse)]
    pub admin_token: Option<AdminToken>,
    /// Clear stored payloads older than this, hourly (`90d`, `12h`, `30m`, `45s`)
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
    /// Consecutive failed forward attempts to a source's app that pause its forwarding
    #[arg(long, env = "HOOKLATCH_FORWARD_PAUSE_AFTER", global = true, value_name = "N",
          default_value = "50", value_parser = at_least_one::<u32>)]
    pub forward_pause_after: u32,
    /// URL receiving a `forwarding.paused` / `forwarding.resumed` alert per incident
    #[arg(long, env = "HOOKLATCH_ALERT_TO", global = true, value_name = "URL",
          hide_env_values = true, value_parser = alert_url)]
    pub alert_to: Option<AlertUrl>,
}

/// Settings that only make sense outside the file (the file's own path).
pub(super) const NOT_IN_FILE: &[&str] = &["config", "help", "version"];

/// The settings alone as a command line (no subcommands): what the defaults and the
/// README table are read from.
pub(super) fn settings_command() -> clap::Command {
    Settings::augment_args(clap::Command::new("hooklatch"))
}

/// Arguments that are settings: every long option of the top level but help and version.
pub(super) fn setting_args(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|arg| {
        arg.get_long().is_some() && !matches!(arg.get_id().as_str(), "help" | "version")
    })
}

/// The command with clap's own environment reading turned off: the layering applies the
/// environment it is given, so tests never race on the process environment. (The
/// variable names stay declared; clap reads their values when it is built, which is
/// harmless where it is not used to parse.)
pub(super) fn without_env(command: clap::Command) -> clap::Command {
    command.mut_args(|arg| arg.env(None::<&str>))
}
