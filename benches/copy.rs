//! How fast a store moves: `hooklatch copy` SQLite → PostgreSQL (SPEC §8: ≥ 20,000
//! events/s), a second `copy` of the same store (every row already there: the pass run
//! while the server is stopped), and `hooklatch export` then `hooklatch import` into an
//! empty store of each kind (≥ 10,000 lines/s).
//!
//! ```sh
//! cargo bench --bench copy                       # 1,000,000 events
//! cargo bench --bench copy -- --events 200000
//! ```
//!
//! The source store is filled by the generator in `common/generate.rs` (a year of mixed
//! traffic written through the store's bulk path, no HTTP) and checked with
//! `hooklatch verify-totals`. Every timed step is the release binary run as a command,
//! as an operator runs it. PostgreSQL databases are the bench's own, dropped at the end;
//! the SQLite files live in a temporary directory under `target/`, removed at the end.

mod common;

use common::pg::Database;
use common::{Ran, hooklatch, hooklatch_with, sqlite_url, thousands};

fn main() {
    let events = common::events(1_000_000);
    let dir = common::work_dir();
    let source = dir.path().join("source.db");
    let filled = common::generate_sqlite(&source, events);
    let source_url = sqlite_url(&source);
    let idle = other_tenants();
    println!("other tenants before measuring: {idle:.2} cores busy of 2");

    let mut rows: Vec<(String, u64, Ran)> = Vec::new();
    if let Some(target) = Database::create("copy") {
        let first = copy(&source_url, &target);
        rows.push(("copy SQLite → PostgreSQL".into(), events, first));
        let again = copy(&source_url, &target);
        rows.push(("copy again, every row already there".into(), events, again));
    }

    let exported = dir.path().join("events.jsonl");
    let export = hooklatch_with(&source_url, &["export"], Some(&exported), None);
    assert!(export.output.status.success(), "export failed");
    let lines = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&exported).expect("the export"),
    ))
    .count() as u64;
    assert_eq!(lines, filled.events, "export wrote one line per event");
    rows.push(("export (SQLite)".into(), lines, export));
    let file = exported.to_str().expect("a UTF-8 path");

    let imported = dir.path().join("imported.db");
    let import = hooklatch(&sqlite_url(&imported), &["import", file]);
    check_import(&import, lines);
    rows.push(("import into SQLite".into(), lines, import));
    if let Some(target) = Database::create("import") {
        let import = hooklatch_with(&target.url, &["import", file], None, Some(&target.name));
        check_import(&import, lines);
        rows.push(("import into PostgreSQL".into(), lines, import));
    }

    println!();
    println!(
        "{} events ({} conversions, {} conflicts, {} outbox rows, {} attempts); other tenants {idle:.2} cores before",
        thousands(filled.events as f64),
        thousands(filled.conversions as f64),
        thousands(filled.conflicts as f64),
        thousands(filled.outbox as f64),
        thousands(filled.attempts as f64),
    );
    println!();
    println!("| step | events or lines | seconds | per second | hooklatch cores | other cores |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (step, count, ran) in &rows {
        println!(
            "| {step} | {} | {:.1} | {} | {:.2} | {:.2} |",
            thousands(*count as f64),
            ran.seconds,
            thousands(*count as f64 / ran.seconds),
            ran.cpu.hooklatch,
            ran.cpu.other,
        );
    }
}

fn copy(source_url: &str, target: &Database) -> Ran {
    let ran = hooklatch_with(
        source_url,
        &["copy", "--from", source_url, "--to", &target.url],
        None,
        Some(&target.name),
    );
    let stdout = String::from_utf8_lossy(&ran.output.stdout);
    assert!(
        ran.output.status.success(),
        "copy failed: {stdout}{}",
        String::from_utf8_lossy(&ran.output.stderr)
    );
    println!(
        "copy: {} ({:.1} s; {})",
        stdout.trim(),
        ran.seconds,
        ran.cpu
    );
    ran
}

fn check_import(ran: &Ran, lines: u64) {
    let stdout = String::from_utf8_lossy(&ran.output.stdout);
    assert!(
        ran.output.status.success(),
        "import failed: {stdout}{}",
        String::from_utf8_lossy(&ran.output.stderr)
    );
    println!(
        "import: {} ({:.1} s; {})",
        stdout.trim(),
        ran.seconds,
        ran.cpu
    );
    assert!(
        stdout.contains(" 0 invalid"),
        "every exported line imports: {stdout}"
    );
    let _ = lines;
}

/// Cores busy on the machine over 3 s while the bench itself waits.
fn other_tenants() -> f64 {
    let before = common::machine_ticks();
    std::thread::sleep(std::time::Duration::from_secs(3));
    (common::machine_ticks() - before) as f64 / common::clock_ticks() / 3.0
}
