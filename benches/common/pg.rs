//! A PostgreSQL database of the bench's own, created and dropped by it, on the server
//! `HOOKLATCH_TEST_POSTGRES_URL` names (default `postgres://postgres@127.0.0.1:5432/postgres`).

use std::time::Duration;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database dropped (with its connections) when this goes away.
pub struct Database {
    pub name: String,
    pub url: String,
    admin_url: String,
    /// False for a database kept between runs (`--keep`).
    drop: bool,
}

impl Database {
    /// `None` (and a line saying so) when no PostgreSQL answers.
    pub fn create(label: &str) -> Option<Database> {
        let admin_url =
            std::env::var("HOOKLATCH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
        let name = format!("hl_bench_{label}_{}", std::process::id());
        if let Err(e) = exec(&admin_url, &format!("CREATE DATABASE {name}")) {
            println!("SKIPPED PostgreSQL ({e})");
            return None;
        }
        Some(Database {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            drop: true,
        })
    }

    /// A database kept between runs: `hl_bench_{label}`, created if missing (the flag says
    /// whether it was there already). Never dropped by the bench; drop it by hand.
    pub fn open_or_create(label: &str) -> Option<(Database, bool)> {
        let admin_url =
            std::env::var("HOOKLATCH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.into());
        let name = format!("hl_bench_{label}");
        let existed = match exec(&admin_url, &format!("CREATE DATABASE {name}")) {
            Ok(()) => false,
            Err(e) if e.contains("already exists") => true,
            Err(e) => {
                println!("SKIPPED PostgreSQL ({e})");
                return None;
            }
        };
        let db = Database {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
            drop: false,
        };
        Some((db, existed))
    }
    /// Runs SQL in this database and returns the first column of every row as text.
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let url = self.url.clone();
        let sql = sql.to_owned();
        std::thread::spawn(move || {
            let mut client = connect(&url).expect("connect to the bench database");
            client
                .simple_query(&sql)
                .expect("bench query")
                .into_iter()
                .filter_map(|m| match m {
                    postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).map(str::to_owned))
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
        .join()
        .expect("query thread")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if !self.drop {
            return;
        }
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = exec(&self.admin_url, &drop) {
            eprintln!("could not drop {}: {e}", self.name);
        }
    }
}

/// Runs `sql` as the admin, on a plain thread (the sync client must not run inside a
/// tokio runtime); the database's own message on failure.
pub fn exec(url: &str, sql: &str) -> Result<(), String> {
    let url = url.to_owned();
    let sql = sql.to_owned();
    std::thread::spawn(move || {
        let mut client = connect(&url)?;
        client
            .batch_execute(&sql)
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            })
    })
    .join()
    .expect("admin thread")
}

fn connect(url: &str) -> Result<postgres::Client, String> {
    let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| e.to_string())?;
    config.connect_timeout(Duration::from_secs(3));
    config.connect(postgres::NoTls).map_err(|e| e.to_string())
}

/// `url` with its database name replaced by `database`, its query string kept.
pub fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map(|(b, q)| (b, format!("?{q}")))
        .unwrap_or((url, String::new()));
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host}/{database}{query}")
}

/// CPU of the backends serving `database` over a command's run, including backends that
/// end before the command does (a command's connections close when it exits): /proc is
/// polled every 100 ms and each backend's last reading kept.
pub struct BackendSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl BackendSampler {
    pub fn start(database: &str) -> BackendSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let needle = format!(" {database} ");
        let thread = std::thread::spawn(move || {
            let mut first: std::collections::HashMap<String, u64> = Default::default();
            let mut last: std::collections::HashMap<String, u64> = Default::default();
            let mut polls = 0u64;
            loop {
                let done = flag.load(std::sync::atomic::Ordering::SeqCst);
                for pid in backends(&needle) {
                    let ticks = super::process_ticks(&pid);
                    // A backend first seen after the first poll started during the run:
                    // all its CPU is the run's.
                    first
                        .entry(pid.clone())
                        .or_insert(if polls == 0 { ticks } else { 0 });
                    last.insert(pid, ticks);
                }
                polls += 1;
                if done {
                    return last
                        .iter()
                        .map(|(pid, t)| t.saturating_sub(first.get(pid).copied().unwrap_or(0)))
                        .sum();
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        BackendSampler { stop, thread }
    }

    /// Ticks used by the backends since `start`.
    pub fn finish(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or(0)
    }
}

/// The pids of the PostgreSQL backends whose process title contains `needle`.
pub fn backends(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().into_string().ok()?;
            pid.bytes().all(|b| b.is_ascii_digit()).then_some(pid)
        })
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| {
                    let title = String::from_utf8_lossy(&c);
                    title.starts_with("postgres: ") && title.contains(needle)
                })
                .unwrap_or(false)
        })
        .collect()
}
