//! Where SQLite's floor per new event is: the store's own CPU per new Refersion sale, with
//! one part taken away at a time, beside what the request costs before it reaches the
//! store. Issue 22's SQLite counterpart of `benches/pgbench/floor.sh`.
//!
//! ```sh
//! cargo bench --bench sqlite_floor                        # 3 rounds of 100,000 sales
//! cargo bench --bench sqlite_floor -- --events 40000 --rounds 5
//! ```
//!
//! Every run calls `Store::process_async`, as the HTTP layer does, from 64 tasks on a
//! two-worker tokio runtime (the server's on this machine), with sales prepared before
//! the clock starts. No HTTP: what is left is the store (the duplicate read, the hand-off
//! to the writer thread, its batch, savepoints, totals and commit). Each variant gets a
//! fresh file, and the variants take turns in every round, so a neighbour that wakes up
//! weighs on all of them:
//! - **as shipped**: the migrated store, `synchronous=FULL`;
//! - **duplicates**: the same sales again, byte for byte, into that store (a read);
//! - **without the read indexes**: the migrated store with every non-unique index the
//!   migrations made dropped (what would remain if the console's reads needed none);
//! - **`synchronous=NORMAL`**: as shipped, without the fsync per commit (how much of the
//!   cost the disk's flush is; not a setting this issue proposes).
//!
//! "prepare" is the CPU of turning a body into the store's `NewEvent` (JSON parse,
//! fingerprint, the Refersion preset), which every request pays before the store; the
//! HTTP exchange itself is the warp ceiling's 10–12 µs (README, "Results").

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{flag, process_ticks, sales, sqlite_url, thousands, us_per_event};
use hooklatch::model::{NewEvent, Outcome};
use hooklatch::store::{DatabaseUrl, Store, StoreOptions};

const CLIENTS: usize = 64;
/// The writer thread's name as /proc shows it (the kernel keeps 15 bytes).
const WRITER_THREAD: &str = "hooklatch-sqlit";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Shipped,
    Duplicates,
    NoReadIndexes,
    NormalSync,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Shipped => "a new sale, as shipped (`synchronous=FULL`)",
            Variant::Duplicates => "the same sale again (a true duplicate)",
            Variant::NoReadIndexes => "a new sale, without the read indexes",
            Variant::NormalSync => "a new sale, `synchronous=NORMAL`",
        }
    }
}

fn main() {
    let events = common::events(100_000) as usize;
    let rounds: usize = flag("--rounds").map_or(3, |r| r.parse().expect("--rounds takes a number"));
    let dir = common::work_dir();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let pid = std::process::id().to_string();

    println!("| round | what | events | events/s | store CPU µs/event | writer thread µs/event |");
    println!("|---:|---|---:|---:|---:|---:|");
    let mut prepare_us = Vec::new();
    let mut measured: Vec<(Variant, Measured)> = Vec::new();
    for round in 1..=rounds {
        for variant in [
            Variant::Shipped,
            Variant::NoReadIndexes,
            Variant::NormalSync,
        ] {
            let path = dir
                .path()
                .join(format!("floor-{round}-{}.db", variant as u8));
            let store = open(&path, variant);
            let prepare_started = process_ticks(&pid);
            let sales = sales::refersion(&format!("{round}-{}", variant as u8), events);
            prepare_us.push(us_per_event(process_ticks(&pid) - prepare_started, events));
            let writer = writer_threads();
            let again = (variant == Variant::Shipped).then(|| sales.clone());
            let m = run(&runtime, &store, &pid, &writer, round, variant, sales);
            measured.push((variant, m));
            if let Some(sales) = again {
                let m = run(
                    &runtime,
                    &store,
                    &pid,
                    &writer,
                    round,
                    Variant::Duplicates,
                    sales,
                );
                measured.push((Variant::Duplicates, m));
            }
            drop(store);
        }
    }
    println!(
        "\n| what | events/s (median) | store CPU µs/event, median | range | writer thread µs/event, median | range |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for variant in [
        Variant::Shipped,
        Variant::Duplicates,
        Variant::NoReadIndexes,
        Variant::NormalSync,
    ] {
        let of = |pick: fn(&Measured) -> f64| {
            Spread::of(
                measured
                    .iter()
                    .filter(|(v, _)| *v == variant)
                    .map(|(_, m)| pick(m)),
            )
        };
        let (rate, store, writer) = (of(|m| m.rate), of(|m| m.store_us), of(|m| m.writer_us));
        println!(
            "| {} | {} | {:.1} | {:.1}–{:.1} | {:.1} | {:.1}–{:.1} |",
            variant.name(),
            thousands(rate.median),
            store.median,
            store.min,
            store.max,
            writer.median,
            writer.min,
            writer.max
        );
    }
    println!(
        "\nprepare (JSON parse, fingerprint, preset), one thread: {:.1} µs/event (median of {})",
        Spread::of(prepare_us.iter().copied()).median,
        prepare_us.len()
    );
}

/// One run's figures.
struct Measured {
    rate: f64,
    store_us: f64,
    writer_us: f64,
}

/// Median and range of a variant's runs.
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Spread {
        let mut values: Vec<f64> = values.collect();
        values.sort_by(f64::total_cmp);
        Spread {
            median: values[values.len() / 2],
            min: values[0],
            max: values[values.len() - 1],
        }
    }
}

/// A migrated store for `variant`, opened again after any change to its schema so that no
/// connection holds a statement prepared against the old one.
fn open(path: &Path, variant: Variant) -> Arc<dyn Store> {
    let url = DatabaseUrl::parse(&sqlite_url(path)).expect("a database URL");
    let options = StoreOptions {
        sqlite_full_sync: variant != Variant::NormalSync,
        statement_timeout: Duration::from_secs(30),
        ..StoreOptions::default()
    };
    let store = hooklatch::store::open(&url, &options).expect("open the bench store");
    store.migrate().expect("migrate the bench store");
    if variant != Variant::NoReadIndexes {
        return store;
    }
    drop(store);
    let conn = rusqlite::Connection::open(path).expect("open the file");
    let names: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND sql NOT LIKE 'CREATE UNIQUE%' AND tbl_name IN ('webhook_events', 'conversions')",
        )
        .and_then(|mut stmt| {
            stmt.query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .expect("the read indexes");
    assert!(
        names.len() >= 8,
        "fewer read indexes than expected: {names:?}"
    );
    for name in names {
        conn.execute_batch(&format!("DROP INDEX {name}"))
            .expect("drop a read index");
    }
    drop(conn);
    hooklatch::store::open(&url, &options).expect("open the bench store again")
}

/// Sends `sales` through the store from [`CLIENTS`] tasks and prints one row.
fn run(
    runtime: &tokio::runtime::Runtime,
    store: &Arc<dyn Store>,
    pid: &str,
    writer: &[String],
    round: usize,
    variant: Variant,
    sales: Vec<NewEvent>,
) -> Measured {
    let events = sales.len();
    let lanes = sales::deal(sales, CLIENTS);
    let writer_before = ticks_of(writer);
    let before = process_ticks(pid);
    let started = Instant::now();
    runtime.block_on(async {
        let tasks: Vec<_> = lanes
            .into_iter()
            .map(|lane| {
                let store = store.clone();
                tokio::spawn(async move {
                    for sale in lane {
                        let deadline = Instant::now() + Duration::from_secs(30);
                        let outcome = store.clone().process_async(sale, deadline).await;
                        let expected = match variant {
                            Variant::Duplicates => {
                                matches!(outcome, Ok((Outcome::Duplicate(_), _)))
                            }
                            _ => matches!(outcome, Ok((Outcome::Processed(_), _))),
                        };
                        assert!(expected, "{outcome:?}");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a bench task");
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let store_cpu = us_per_event(process_ticks(pid) - before, events);
    let writer_cpu = us_per_event(ticks_of(writer) - writer_before, events);
    println!(
        "| {round} | {} | {} | {} | {store_cpu:.1} | {writer_cpu:.1} |",
        variant.name(),
        thousands(events as f64),
        thousands(events as f64 / seconds),
    );
    Measured {
        rate: events as f64 / seconds,
        store_us: store_cpu,
        writer_us: writer_cpu,
    }
}

/// The `/proc/self/task/<tid>` paths of the live writer threads: the store just opened is
/// the only one alive, since each variant's store is dropped before the next opens.
fn writer_threads() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task");
    tasks
        .filter_map(Result::ok)
        .map(|task| task.path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|comm| comm.trim_end() == WRITER_THREAD)
        })
        .map(|task| task.display().to_string())
        .collect()
}

fn ticks_of(threads: &[String]) -> u64 {
    threads
        .iter()
        .map(|task| common::stat_ticks(&format!("{task}/stat")))
        .sum()
}
