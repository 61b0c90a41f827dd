//! `hooklatch forward retry [--source S] [--failed]`: queues forwards again through the
//! store, so it works while a server runs on the same store (its worker picks them up
//! at its next poll).

use clap::Subcommand;

use crate::model::Source;
use crate::store::Store;

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

/// Runs one `forward` subcommand and returns the line to print.
pub fn run(store: &dyn Store, command: &ForwardCommand) -> Result<String, String> {
    match command {
        ForwardCommand::Retry { source, failed } => retry(store, source.as_deref(), *failed),
    }
}

fn retry(store: &dyn Store, source: Option<&str>, failed: bool) -> Result<String, String> {
    let source = source
        .map(|name| {
            Source::parse(name).ok_or_else(|| {
                format!("--source {name:?}: a source name is 1-64 characters of a-z, 0-9, _ and -")
            })
        })
        .transpose()?;
    if source.is_none() && !failed {
        // Without either, this would send every event ever forwarded again.
        return Err("say which forwards to queue again: --failed, --source S, or both".into());
    }
    let queued = store
        .requeue_forwards(source.as_ref(), failed)
        .map_err(|e| format!("cannot queue forwards: {e}"))?;
    let what = if failed {
        "failed forwards"
    } else {
        "forwards"
    };
    Ok(match &source {
        Some(source) => format!("{queued} {what} of {source} queued again"),
        None => format!("{queued} {what} queued again"),
    })
}
