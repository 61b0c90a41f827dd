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
    #[arg(long, value_parser = parse_duration)]
    pub payloads_older_than: Duration,
    /// Only count what would be cleared.
    #[arg(long)]
    pub dry_run: bool,
}

/// `90d`, `12h`, `30m` (a positive whole number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 90d, 12h or 30m");
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        _ => return Err(bad()),
    };
    if number == 0 {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1_800)));
        for bad in [
            "",
            "d",
            "0d",
            "-1d",
            "1w",
            "1.5h",
            "h12",
            "99999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
