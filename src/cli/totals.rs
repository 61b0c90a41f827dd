//! `hooklatch verify-totals [--repair]`: recounts every row and compares the recount with
//! the totals the store keeps as events arrive (what `stats` and `conversions/summary`
//! answer). Drift fails the command, so a cron job or a script notices; `--repair`
//! rebuilds the totals from the rows and checks again.

use clap::Args;

use crate::store::Store;

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct VerifyTotalsArgs {
    /// Rebuild the totals from the rows when they drifted (deliveries go on meanwhile).
    #[arg(long)]
    pub repair: bool,
}

/// The report on success; an error (non-zero exit) when drift remains.
pub fn run(store: &dyn Store, args: &VerifyTotalsArgs) -> Result<String, String> {
    let check = store.verify_totals().map_err(|e| e.to_string())?;
    if check.is_exact() {
        return Ok(check.to_string());
    }
    if !args.repair {
        return Err(format!(
            "{check}\nrun `hooklatch verify-totals --repair` to rebuild them"
        ));
    }
    store.recompute_totals().map_err(|e| e.to_string())?;
    let after = store.verify_totals().map_err(|e| e.to_string())?;
    if after.is_exact() {
        Ok(format!("{check}\nrepaired: {after}"))
    } else {
        Err(format!("{check}\nstill after the repair: {after}"))
    }
}
