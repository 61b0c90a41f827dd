//! `hooklatch copy --from URL --to URL`: the lossless store move (SPEC §5.2). Every row of
//! every table moves as it is, ids included, in keyset-ordered batches, each written in
//! one transaction; then the target's id sequences move past the copied ids.
//!
//! Only the rows present when the copy began are copied (their bounds are read in one
//! snapshot, so a copied row never refers to one left behind); what arrives meanwhile is
//! for a second run. A row already on the target is compared: the same is counted as
//! present, another content is reported and left alone, and the command then fails.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use clap::Args;
use parking_lot::Mutex;

use crate::store::transfer::{CopyRow, Table, row_key};
use crate::store::{DatabaseUrl, StoreError, StoreOptions, Transfer, open_transfer};

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
///
/// Reading and writing overlap: this thread reads the next batches from `from` while
/// [`WRITERS`] threads write the previous ones to `to`, each in its own transaction (on
/// PostgreSQL each on its own connection, so both cores of a small machine write). A
/// table's batches are all written before the next table's begin, because a row refers
/// only to rows of the tables before it.
pub fn copy(
    from: &dyn Transfer,
    to: &dyn Transfer,
    progress: &mut Progress,
) -> Result<CopyReport, StoreError> {
    let bounds = from.copy_bounds()?;
    progress.total = bounds.iter().map(|b| b.rows.max(0) as u64).sum();
    let mut report = CopyReport::default();
    for (table, bound) in Table::ALL.into_iter().zip(bounds) {
        let first = report.different.len();
        copy_table(
            from,
            to,
            table,
            bound.max_key,
            &Mutex::new((&mut report, &mut *progress)),
        )?;
        // Writers finish in any order: the report lists a table's differences by key.
        report.different[first..].sort_unstable();
    }
    to.finish_copy()?;
    // The rows went in without the totals kept as events arrive (PostgreSQL's triggers
    // skip them, SQLite keeps totals in the writer): rebuild them from the rows now on the
    // target, with what other writers added meanwhile.
    to.recompute_totals()?;
    progress.done();
    Ok(report)
}

/// Batches being written at once (see [`copy`]). Two: the machine the speed is measured
/// on has two cores; more would only queue.
const WRITERS: usize = 2;

/// What the writers add to as batches commit.
type Tally<'a> = Mutex<(&'a mut CopyReport, &'a mut Progress)>;

/// Copies the rows of one table with keys up to `upto`.
fn copy_table(
    from: &dyn Transfer,
    to: &dyn Transfer,
    table: Table,
    upto: i64,
    tally: &Tally,
) -> Result<(), StoreError> {
    // Room for one batch waiting per writer: the reader stays a batch ahead of each.
    let (send, receive) = mpsc::sync_channel::<Vec<CopyRow>>(WRITERS);
    let receive = Mutex::new(receive);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| scope.spawn(|| write_batches(to, table, &receive, &failed, tally)))
            .collect();
        let read = read_batches(from, table, upto, &send, &failed);
        // Closing the channel ends the writers once they have written what is queued.
        drop(send);
        let mut result = read;
        for writer in writers {
            let written = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            // A writer's failure is the cause; the reader then only stopped.
            if let Err(e) = written {
                result = Err(e);
            }
        }
        result
    })
}

/// Reads the table in key order and queues its batches, until the end or a writer fails.
fn read_batches(
    from: &dyn Transfer,
    table: Table,
    upto: i64,
    send: &mpsc::SyncSender<Vec<CopyRow>>,
    failed: &AtomicBool,
) -> Result<(), StoreError> {
    let mut after = i64::MIN;
    while !failed.load(Ordering::Relaxed) {
        let rows = from.read_rows(table, after, upto, COPY_BATCH)?;
        let Some(last) = rows.last() else { break };
        after = row_key(last)?;
        let full = rows.len() as u64 >= u64::from(COPY_BATCH);
        if send.send(rows).is_err() || !full {
            break;
        }
    }
    Ok(())
}

/// Writes queued batches until the channel closes. After a failure it keeps taking
/// batches, unwritten, so the reader never waits on a full channel nobody empties.
fn write_batches(
    to: &dyn Transfer,
    table: Table,
    receive: &Mutex<mpsc::Receiver<Vec<CopyRow>>>,
    failed: &AtomicBool,
    tally: &Tally,
) -> Result<(), StoreError> {
    let mut result = Ok(());
    loop {
        // The lock is held only to take a batch, not while writing it.
        let next = receive.lock().recv();
        let Ok(rows) = next else { return result };
        if failed.load(Ordering::Relaxed) {
            continue;
        }
        let count = rows.len() as u64;
        match to.write_rows(table, rows) {
            Ok(written) => {
                let mut tally = tally.lock();
                let (report, progress) = &mut *tally;
                report.copied += written.inserted;
                report.present += written.present;
                report
                    .different
                    .extend(written.different.into_iter().map(|k| (table.name(), k)));
                progress.advance(count);
            }
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                result = Err(e);
            }
        }
    }
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
