//! The command line: the `Cli` parser and its `Command`s, each command's arguments and
//! work in a file of its own. `main.rs` dispatches to them; each reads the same `Config`
//! as `serve`, runs on the main thread (where the sync PostgreSQL client may block) and
//! works while a server runs on the same store.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{Config, LoadError, Settings};

pub mod backup;
pub mod events;
pub mod export;
pub mod forward;
pub mod import;
pub mod prune;
pub mod totals;

pub use forward::ForwardCommand;

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
    Events(events::EventsCommand),
    /// Every matching event as JSON lines on stdout.
    Export(export::ExportArgs),
    /// Feed exported JSON lines (a file, or - for stdin) through the idempotent step.
    Import(import::ImportArgs),
    /// Clear stored payloads older than a duration; keys, fingerprints and counts stay.
    Prune(prune::PruneArgs),
    /// Recount every row and compare with the kept totals (`stats`, the summary);
    /// fails on drift. `--repair` rebuilds them from the rows.
    VerifyTotals(totals::VerifyTotalsArgs),
    /// Forwarding to your app: queue events again, pause, resume, replay a window.
    #[command(subcommand)]
    Forward(ForwardCommand),
}

impl Cli {
    /// Parses the command line and resolves every setting: flag, then `env`, then the
    /// TOML file (`--config` / `HOOKLATCH_CONFIG`), then the declared default.
    pub fn load<T: Into<OsString> + Clone>(
        args: impl IntoIterator<Item = T>,
        env: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Result<(Cli, Config), LoadError> {
        crate::config::load(args, env)
    }
}

/// `text` with every control character (C0, DEL, C1) and bidirectional override written
/// as `\u{1b}`, for the tables the CLI prints (SPEC §5.2): a stored event id is whatever
/// a sender chose, and raw it could move the cursor, recolour or retitle the operator's
/// terminal, or reorder what the line appears to say.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let hostile = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(hostile) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hostile(c) {
            escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            escaped.push(c);
        }
    }
    std::borrow::Cow::Owned(escaped)
}

#[cfg(test)]
mod tests;
