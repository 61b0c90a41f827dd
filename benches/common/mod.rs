//! What the benches share: the store generator, prepared sales, the release binary run
//! as a command or a server, PostgreSQL databases of their own, and CPU accounting.

#![allow(dead_code)]

pub mod generate;
pub mod load;
pub mod pg;
pub mod sales;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use hooklatch::store::{DatabaseUrl, StoreOptions, Transfer, open_transfer};

pub const BINARY: &str = env!("CARGO_BIN_EXE_hooklatch");

/// A flag's value from the bench's arguments (`cargo bench --bench X -- --events 1000000`).
pub fn flag(name: &str) -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == name {
            return args.next();
        }
        if let Some(value) = arg.strip_prefix(&format!("{name}=")) {
            return Some(value.to_owned());
        }
    }
    None
}

/// `--events N` (underscores allowed), else `HOOKLATCH_BENCH_EVENTS`, else `default`.
pub fn events(default: u64) -> u64 {
    flag("--events")
        .or_else(|| std::env::var("HOOKLATCH_BENCH_EVENTS").ok())
        .map(|v| v.replace('_', "").parse().expect("--events takes a number"))
        .unwrap_or(default)
}

/// Where the bench keeps its SQLite files: `--dir`, else the target directory (not /tmp,
/// which may be a small tmpfs). Removed when the bench ends.
pub fn work_dir() -> tempfile::TempDir {
    let parent = flag("--dir")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    tempfile::Builder::new()
        .prefix("hooklatch-bench-")
        .tempdir_in(parent)
        .expect("a work directory")
}

/// Options for bulk work: no store timeout short enough to cut a 10-million-row recount.
pub fn bulk_options() -> StoreOptions {
    StoreOptions {
        statement_timeout: std::time::Duration::from_secs(3600),
        connect_timeout: std::time::Duration::from_secs(10),
        ..StoreOptions::default()
    }
}

/// Opens and migrates a store for the generator.
pub fn open(url: &str) -> std::sync::Arc<dyn Transfer> {
    let parsed = DatabaseUrl::parse(url).expect("a database URL");
    let store = open_transfer(&parsed, &bulk_options()).expect("open the store");
    store.migrate().expect("migrate");
    store
}

/// Fills an empty SQLite file with `events` events and checks the totals with the
/// binary's own `verify-totals`.
pub fn generate_sqlite(path: &Path, events: u64) -> generate::Filled {
    let url = sqlite_url(path);
    drop(open(&url));
    let filled = generate::Generator::new(events).fill_sqlite(path, true);
    println!("generated: {filled}");
    let check = hooklatch(&url, &["verify-totals"]);
    assert!(
        check.output.status.success(),
        "verify-totals after the generator: {}{}",
        String::from_utf8_lossy(&check.output.stdout),
        String::from_utf8_lossy(&check.output.stderr)
    );
    println!(
        "verify-totals: {} ({:.1} s)",
        String::from_utf8_lossy(&check.output.stdout).trim(),
        check.seconds
    );
    filled
}

pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A finished run of the release binary.
pub struct Ran {
    pub output: Output,
    pub seconds: f64,
    pub cpu: CpuUse,
}

/// The release binary run once against `database_url`, timed, with the CPU it, the
/// bench's PostgreSQL backends and everything else on the machine used meanwhile.
pub fn hooklatch(database_url: &str, args: &[&str]) -> Ran {
    hooklatch_with(database_url, args, None, None)
}

pub fn hooklatch_with(
    database_url: &str,
    args: &[&str],
    stdout: Option<&Path>,
    pg_database: Option<&str>,
) -> Ran {
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        // A recount of millions of rows (copy, verify-totals) takes longer than the
        // default store timeout meant for one request.
        .env("HOOKLATCH_STORE_TIMEOUT", "3600")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    match stdout {
        Some(path) => command.stdout(std::fs::File::create(path).expect("output file")),
        None => command.stdout(Stdio::piped()),
    };
    children_ticks_delta();
    let sampler = pg_database.map(pg::BackendSampler::start);
    let machine = machine_ticks();
    let began = Instant::now();
    let child = command.spawn().expect("run target/release/hooklatch");
    // The child's own CPU is counted once it has been waited for (cutime, cstime).
    let output = child.wait_with_output().expect("wait for hooklatch");
    let seconds = began.elapsed().as_secs_f64();
    let machine = machine_ticks().saturating_sub(machine);
    let child_ticks = children_ticks_delta();
    let db_ticks = sampler.map_or(0, pg::BackendSampler::finish);
    let hz = clock_ticks();
    let cores = |ticks: u64| ticks as f64 / hz / seconds.max(1e-9);
    Ran {
        cpu: CpuUse {
            hooklatch: cores(child_ticks),
            db: cores(db_ticks),
            other: cores(machine.saturating_sub(child_ticks + db_ticks)),
        },
        output,
        seconds,
    }
}

/// CPU ticks of this process's waited-for children so far, read as a delta since the
/// previous call (from /proc/self/stat fields cutime + cstime).
fn children_ticks_delta() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: AtomicU64 = AtomicU64::new(0);
    let field = stat_fields("/proc/self/stat");
    let total = field(13) + field(14);
    total - SEEN.swap(total, Ordering::SeqCst).min(total)
}

/// Cores used over a command's run: by hooklatch, by the bench's PostgreSQL backends,
/// and by everything else on the machine (other tenants, the bench itself, PostgreSQL's
/// shared processes such as the WAL writer).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    pub hooklatch: f64,
    pub db: f64,
    pub other: f64,
}

impl std::fmt::Display for CpuUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cores: hooklatch {:.2}, PostgreSQL backends {:.2}, other {:.2}",
            self.hooklatch, self.db, self.other
        )
    }
}

/// utime + stime of a process (all its threads), fields 14 and 15 of /proc/<pid>/stat.
pub fn process_ticks(pid: &str) -> u64 {
    stat_ticks(&format!("/proc/{pid}/stat"))
}

/// User and system ticks from a /proc `stat` file: a process's, or one thread's
/// (`/proc/<pid>/task/<tid>/stat`).
pub fn stat_ticks(path: &str) -> u64 {
    let field = stat_fields(path);
    field(11) + field(12)
}

/// The numeric fields of a /proc/<pid>/stat file after the command name (which may hold
/// spaces), by index from 0 = the state field; 0 for a field missing or unreadable.
fn stat_fields(path: &str) -> impl Fn(usize) -> u64 + use<> {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect()
        })
        .unwrap_or_default();
    move |i| fields.get(i).copied().unwrap_or(0)
}

/// Busy ticks of the whole machine: the first /proc/stat line but idle and iowait.
pub fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse::<u64>().ok())
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum()
}

pub fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Microseconds of CPU per event from clock ticks spent on `events` events.
pub fn us_per_event(ticks: u64, events: usize) -> f64 {
    ticks as f64 / clock_ticks() * 1e6 / events as f64
}

/// Thousands separators, as the README's tables write figures.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
