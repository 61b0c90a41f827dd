//! `hooklatch copy --from URL --to URL`: the lossless store move (SPEC §5.2). Every row of
//! every table moves as it is, ids included, in keyset-ordered batches, each written in
//! one transaction; then the target's id sequences move past the copied ids.
//!
//! Only the rows present when the copy began are copied (their bounds are read in one
//! snapshot, so a copied row never refers to one left behind); what arrives meanwhile is
//! for a second run. A row already on the target is compared: the same is counted as
//! present, another content is reported and left alone, and the command then fails.

use std::io::{IsTerminal, Write};

use clap::Args;

use crate::store::transfer::{Table, row_key};
use crate::store::{DatabaseUrl, StoreOptions, Transfer, open_transfer};

/// Rows read and written per batch.
const COPY_BATCH: u32 = 2000;

#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct CopyArgs {
    /// The store to copy from (sqlite://PATH or postgres://…).
    #[arg(long)]
    pub from: String,
    /// The store to copy to; migrated first.
    #[arg(long)]
    pub to: String,
}

/// What a copy did, over every table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub copied: u64,
    pub present: u64,
    /// `(table, key)` of each row found different on the target, left as it was.
    pub different: Vec<(&'static str, i64)>,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows copied, {} already present, {} different",
            self.copied,
            self.present,
            self.different.len()
        )
    }
}

/// Opens both stores, migrates them, and copies.
pub fn run(args: &CopyArgs, options: &StoreOptions) -> Result<CopyReport, String> {
    let open = |text: &str, what: &str| -> Result<_, String> {
        let url = DatabaseUrl::parse(text).map_err(|e| format!("--{what}: {e}"))?;
        let store = open_transfer(&url, options).map_err(|e| format!("cannot open {url}: {e}"))?;
        store
            .migrate()
            .map_err(|e| format!("cannot migrate {url}: {e}"))?;
        Ok(store)
    };
    let from = open(&args.from, "from")?;
    let to = open(&args.to, "to")?;
    let mut progress = Progress::new(std::io::stderr().is_terminal());
    copy(from.as_ref(), to.as_ref(), &mut progress).map_err(|e| e.to_string())
}

/// Copies every table of `from` into `to`, reporting progress on stderr.
pub fn copy(
    from: &dyn Transfer,
    to: &dyn Transfer,
    progress: &mut Progress,
) -> Result<CopyReport, crate::store::StoreError> {
    let bounds = from.copy_bounds()?;
    progress.total = bounds.iter().map(|b| b.rows.max(0) as u64).sum();
    let mut report = CopyReport::default();
    for (table, bound) in Table::ALL.into_iter().zip(bounds) {
        let mut after = i64::MIN;
        loop {
            let rows = from.read_rows(table, after, bound.max_key, COPY_BATCH)?;
            let Some(last) = rows.last() else { break };
            after = row_key(last)?;
            let count = rows.len() as u64;
            let written = to.write_rows(table, rows)?;
            report.copied += written.inserted;
            report.present += written.present;
            report
                .different
                .extend(written.different.into_iter().map(|k| (table.name(), k)));
            progress.advance(count);
            if count < u64::from(COPY_BATCH) {
                break;
            }
        }
    }
    to.finish_copy()?;
    // The rows went in without the totals kept as events arrive (SQLite keeps them in
    // the writer, not in triggers): rebuild them from the rows now on the target.
    to.recompute_totals()?;
    progress.done();
    Ok(report)
}

/// Progress on stderr: a bar redrawn in place on a terminal, else one line per 10 %.
pub struct Progress {
    terminal: bool,
    total: u64,
    done: u64,
    /// The last tenth reported (plain output).
    tenth: u64,
}

impl Progress {
    pub fn new(terminal: bool) -> Progress {
        Progress {
            terminal,
            total: 0,
            done: 0,
            tenth: 0,
        }
    }

    /// No output at all (tests).
    pub fn quiet() -> Progress {
        Progress {
            terminal: false,
            total: 0,
            done: 0,
            tenth: u64::MAX,
        }
    }

    fn advance(&mut self, rows: u64) {
        self.done += rows;
        let total = self.total.max(1);
        let percent = (self.done * 100 / total).min(100);
        let mut err = std::io::stderr().lock();
        if self.tenth == u64::MAX {
            return;
        }
        if self.terminal {
            let filled = (percent / 5) as usize;
            let _ = write!(
                err,
                "\rcopy [{}{}] {percent:>3}% {}/{} rows",
                "#".repeat(filled),
                "-".repeat(20 - filled),
                self.done,
                self.total
            );
        } else {
            while self.tenth < percent / 10 {
                self.tenth += 1;
                let _ = writeln!(
                    err,
                    "copy: {}% ({} of {} rows)",
                    self.tenth * 10,
                    self.done,
                    self.total
                );
            }
        }
    }

    fn done(&mut self) {
        if self.terminal && self.tenth != u64::MAX {
            let _ = writeln!(std::io::stderr());
        }
    }
}
