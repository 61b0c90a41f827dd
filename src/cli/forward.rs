//! `hooklatch forward retry|pause|resume|replay`: operator control of forwarding through
//! the store, so it works while a server runs on the same store (its worker picks the
//! changes up at its next poll). A pause or resume that changed the source's state also
//! yields its alert, which `main` sends.

use clap::Subcommand;
use serde_json::Value;

use crate::config::Sources;
use crate::forward::alert::{paused_alert, resumed_alert};
use crate::model::Source;
use crate::read::Timestamp;
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
    /// Pause a source's forwarding on every instance: its events are still recorded and
    /// kept pending, none is sent.
    Pause {
        /// The source.
        source: String,
    },
    /// Resume a paused source's forwarding; what it kept meanwhile is sent at its pace.
    Resume {
        /// The source.
        source: String,
    },
    /// Queue every recorded event of a source first seen in a window again, delivered
    /// ones included, each with its same webhook-id.
    Replay {
        /// The source.
        #[arg(long)]
        source: String,
        /// Start of the window (RFC 3339), on first_seen_at.
        #[arg(long)]
        since: String,
        /// End of the window (RFC 3339, excluded); default: now.
        #[arg(long)]
        until: Option<String>,
    },
}

/// Runs one `forward` subcommand and returns the line to print.
pub fn run(store: &dyn Store, command: &ForwardCommand) -> Result<String, String> {
    execute(store, None, command).map(|(line, _)| line)
}

/// Runs one `forward` subcommand: the line to print, and the alert to send when a pause
/// or resume changed the source's state. With `sources`, a source that does not forward
/// is refused.
pub fn execute(
    store: &dyn Store,
    sources: Option<&Sources>,
    command: &ForwardCommand,
) -> Result<(String, Option<Value>), String> {
    match command {
        ForwardCommand::Retry { source, failed } => {
            retry(store, source.as_deref(), *failed).map(|line| (line, None))
        }
        ForwardCommand::Pause { source } | ForwardCommand::Resume { source } => {
            let paused = matches!(command, ForwardCommand::Pause { .. });
            let source = forwarding_source(sources, source)?;
            let changed = store
                .set_forwarding_paused(&source, paused)
                .map_err(|e| format!("cannot change forwarding of {source}: {e}"))?;
            Ok(match (changed, paused) {
                (Some(change), true) => (
                    format!("forwarding of {source} paused"),
                    Some(paused_alert(&change)),
                ),
                (Some(_), false) => (
                    format!("forwarding of {source} resumed"),
                    Some(resumed_alert(source.as_str())),
                ),
                (None, true) => (format!("forwarding of {source} was already paused"), None),
                (None, false) => (format!("forwarding of {source} was not paused"), None),
            })
        }
        ForwardCommand::Replay {
            source,
            since,
            until,
        } => {
            let source = forwarding_source(sources, source)?;
            let since = Timestamp::parse(since, "--since").map_err(|e| e.to_string())?;
            let until = until
                .as_deref()
                .map(|u| Timestamp::parse(u, "--until"))
                .transpose()
                .map_err(|e| e.to_string())?;
            let queued = store
                .replay_forwards(&source, &since, until.as_ref())
                .map_err(|e| format!("cannot replay forwards: {e}"))?;
            Ok((format!("{queued} forwards of {source} queued again"), None))
        }
    }
}

fn parse_source(name: &str, what: &str) -> Result<Source, String> {
    Source::parse(name).ok_or_else(|| {
        format!("{what} {name:?}: a source name is 1-64 characters of a-z, 0-9, _ and -")
    })
}

fn forwarding_source(sources: Option<&Sources>, name: &str) -> Result<Source, String> {
    let source = parse_source(name, "source")?;
    if let Some(sources) = sources
        && sources.forward_to(&source).is_none()
    {
        return Err(format!(
            "{source} does not forward: set [sources.{source}] forward_to first"
        ));
    }
    Ok(source)
}

fn retry(store: &dyn Store, source: Option<&str>, failed: bool) -> Result<String, String> {
    let source = source
        .map(|name| parse_source(name, "--source"))
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
