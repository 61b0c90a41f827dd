//! `hooklatch prune --payloads-older-than DURATION` and the `payload_retention` task of a
//! running server: clear stored payloads (events and conflicts) last seen before a cutoff.
//! Rows, keys, fingerprints and counts stay, so a late retry of a pruned event is still
//! a duplicate, never new.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::read::{Pruned, Timestamp};
use crate::store::{Store, StoreError, run_blocking};

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct PruneArgs {
    /// Clear payloads of events last seen longer ago than this: 90d, 12h or 30m.
    #[arg(long, value_parser = crate::config::parse_age)]
    pub payloads_older_than: Duration,
    /// Only count what would be cleared.
    #[arg(long)]
    pub dry_run: bool,
}

/// Clears (or counts) payloads older than `age` and says what it did.
pub fn run(store: &dyn Store, args: &PruneArgs) -> Result<String, String> {
    let cutoff = Timestamp::ago(args.payloads_older_than);
    let pruned = store
        .prune_payloads(&cutoff, args.dry_run)
        .map_err(|e| e.to_string())?;
    let verb = if args.dry_run {
        "would clear"
    } else {
        "cleared"
    };
    Ok(format!(
        "{verb} the payloads of {} events and {} conflicts last seen before {cutoff}",
        pruned.events, pruned.conflicts
    ))
}

/// How often a server with `payload_retention` prunes.
pub const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// One retention pass, off the async runtime.
pub async fn prune_once(store: Arc<dyn Store>, retention: Duration) -> Result<Pruned, StoreError> {
    run_blocking(move || store.prune_payloads(&Timestamp::ago(retention), false)).await
}

/// Prunes at start and then every [`RETENTION_EVERY`], for as long as the server runs.
/// A failed pass is logged and retried at the next tick: retention is housekeeping, it
/// never stops the server.
pub async fn retention_task(store: Arc<dyn Store>, retention: Duration) {
    let mut ticks = tokio::time::interval(RETENTION_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match prune_once(store.clone(), retention).await {
            Ok(pruned) => tracing::info!(
                events = pruned.events,
                conflicts = pruned.conflicts,
                retention_secs = retention.as_secs(),
                "payload retention: pruned"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "payload retention: prune failed; retrying next hour")
            }
        }
    }
}
