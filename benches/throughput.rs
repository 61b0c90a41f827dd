//! Throughput and latency of the real server, beside the ceiling of the store itself,
//! measured in one run so the ratio can be read off directly.
//!
//! ```sh
//! cargo bench --bench throughput                        # both backends, 5 s per phase
//! cargo bench --bench throughput -- --backends sqlite --seconds 3
//! cargo bench --bench throughput -- --soak 300          # RSS before/after 5 minutes of load
//! ```
//!
//! For each backend and each of 1 and 64 concurrent clients it reports requests/s, p50
//! and p99 for new events and for duplicates, sent over keep-alive HTTP/1.1 connections
//! on loopback. The ceiling is the store alone doing the same work:
//! - PostgreSQL: `pgbench -M prepared` calling `process_webhook_idempotently` with the
//!   same arguments the server sends;
//! - SQLite: a raw rusqlite loop running the same statements with the same durability
//!   (WAL, `synchronous=FULL` for new events, `NORMAL` for duplicate bookkeeping).
//!
//! PostgreSQL comes from `HOOKLATCH_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the bench creates and drops its own
//! database. Timings live here, never in pass/fail tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hooklatch::config::{Config, DatabaseUrl};
use hooklatch::store::{self, Store, StoreOptions};

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";

struct Args {
    backends: Vec<String>,
    seconds: u64,
    soak: u64,
    clients: Vec<usize>,
}

fn args() -> Args {
    let mut args = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        seconds: 5,
        soak: 0,
        clients: vec![1, 64],
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--backends" => args.backends = value().split(',').map(String::from).collect(),
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--soak" => args.soak = value().parse().expect("--soak SECONDS"),
            "--clients" => {
                args.clients = value()
                    .split(',')
                    .map(|c| c.parse().expect("--clients 1,64"))
                    .collect()
            }
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

/// Latencies of one phase, in microseconds.
struct Sample {
    latencies: Vec<u64>,
    elapsed: Duration,
    errors: usize,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }
}

fn main() {
    let args = args();
    println!(
        "hooklatch throughput bench: {} s per phase, clients {:?}",
        args.seconds, args.clients
    );
    println!(
        "{:<9} {:<10} {:<9} {:>8} {:>10} {:>9} {:>9} {:>7} {:>12} {:>7}",
        "backend",
        "kind",
        "clients",
        "",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "ceiling/s",
        "ratio"
    );
    for backend in &args.backends {
        match backend.as_str() {
            "sqlite" => bench_sqlite(&args),
            "postgres" => bench_postgres(&args),
            other => panic!("unknown backend {other}"),
        }
    }
}

fn bench_sqlite(args: &Args) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let url = DatabaseUrl::Sqlite(path.clone());
    let store = store::open(&url, &StoreOptions::default()).expect("open SQLite");
    store.migrate().expect("migrate");
    run_phases("sqlite", store, &url, args, |kind, _clients| {
        sqlite_ceiling(&path, kind, args.seconds)
    });
}

fn bench_postgres(args: &Args) {
    let admin =
        std::env::var("HOOKLATCH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    let name = format!("hooklatch_bench_{}", std::process::id());
    // Two calls: a multi-statement batch is one transaction, which DROP DATABASE refuses.
    let created = admin_exec(&admin, &format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|()| admin_exec(&admin, &format!("CREATE DATABASE {name}")));
    if let Err(e) = created {
        println!("postgres  SKIPPED: no PostgreSQL at {admin}: {e}");
        return;
    }
    let db_url = with_database(&admin, &name);
    let url = DatabaseUrl::Postgres(db_url.clone());
    let options = StoreOptions {
        pool_size: 32,
        ..StoreOptions::default()
    };
    let store = run_off_runtime(move || store::open(&url, &options)).expect("open PostgreSQL");
    let migrate_store = store.clone();
    run_off_runtime(move || migrate_store.migrate()).expect("migrate");
    let url = DatabaseUrl::Postgres(db_url.clone());
    run_phases("postgres", store, &url, args, |kind, clients| {
        pgbench_ceiling(&db_url, kind, clients, args.seconds)
    });
    let _ = admin_exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

fn run_phases(
    backend: &str,
    store: Arc<dyn Store>,
    url: &DatabaseUrl,
    args: &Args,
    ceiling: impl Fn(&str, usize) -> Option<Sample>,
) {
    let config = Config {
        database_url: url.clone(),
        store: StoreOptions {
            pool_size: 32,
            ..StoreOptions::default()
        },
        ..Config::default()
    };
    let server = Server::start(store.clone(), &config);
    // The duplicate phase hammers one event that already exists.
    let (status, _) = post(&mut connect(server.addr), &sale_body("dup-fixed"));
    assert!(status == 200 || status == 202, "seed duplicate: {status}");

    let mut server_samples = Vec::new();
    for &clients in &args.clients {
        for kind in ["new", "duplicate"] {
            let duration = Duration::from_secs(args.seconds);
            server_samples.push((
                kind,
                clients,
                load(server.addr, kind, clients, duration, backend),
            ));
        }
    }
    if args.soak > 0 {
        soak(server.addr, backend, Duration::from_secs(args.soak));
    }
    // The server and its pool go before the ceiling runs, so the ceiling has the store
    // to itself (pgbench with 64 clients needs 64 of PostgreSQL's connections).
    server.stop();
    run_off_runtime(move || {
        drop(store);
        Ok::<(), ()>(())
    })
    .ok();

    for (kind, clients, mut sample) in server_samples {
        let mut ceiling = ceiling(kind, clients);
        let ceiling_rate = ceiling.as_ref().map(Sample::rate);
        let ratio = ceiling_rate.map(|r| format!("{:.2}", sample.rate() / r));
        let ceiling_text = ceiling_rate.map(|r| format!("{r:.0}"));
        println!(
            "{backend:<9} {kind:<10} {clients:<9} {:>8} {:>10.0} {:>9.3} {:>9.3} {:>7} {:>12} {:>7}",
            "server",
            sample.rate(),
            sample.percentile(0.50),
            sample.percentile(0.99),
            sample.errors,
            ceiling_text.unwrap_or_else(|| "-".into()),
            ratio.unwrap_or_else(|| "-".into()),
        );
        if let Some(c) = ceiling.as_mut() {
            println!(
                "{backend:<9} {kind:<10} {clients:<9} {:>8} {:>10.0} {:>9.3} {:>9.3} {:>7}",
                "ceiling",
                c.rate(),
                c.percentile(0.50),
                c.percentile(0.99),
                c.errors
            );
        }
    }
}

/// Sustained mixed load (new and duplicate events from 16 clients) with RSS sampled at
/// the start and the end.
fn soak(addr: SocketAddr, backend: &str, duration: Duration) {
    let warm = load(addr, "new", 16, Duration::from_secs(5), backend);
    let start_rss = rss_kib();
    println!(
        "soak {backend}: warm-up {} requests, RSS at start {} KiB",
        warm.latencies.len(),
        start_rss
    );
    let started = Instant::now();
    let mut total = 0;
    let mut errors = 0;
    while started.elapsed() < duration {
        for kind in ["new", "duplicate"] {
            let sample = load(addr, kind, 16, Duration::from_secs(10), backend);
            total += sample.latencies.len();
            errors += sample.errors;
        }
        println!(
            "soak {backend}: {:>4} s, {total} requests, {errors} errors, RSS {} KiB",
            started.elapsed().as_secs(),
            rss_kib()
        );
    }
    let end_rss = rss_kib();
    println!(
        "soak {backend}: {} s, {total} requests, {errors} errors; RSS start {start_rss} KiB, end {end_rss} KiB ({:+.1}%)",
        started.elapsed().as_secs(),
        (end_rss as f64 - start_rss as f64) * 100.0 / start_rss as f64
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}

/// `clients` threads on keep-alive connections for `duration`.
fn load(addr: SocketAddr, kind: &str, clients: usize, duration: Duration, tag: &str) -> Sample {
    static RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let deadline = started + duration;
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let kind = kind.to_owned();
            let tag = tag.to_owned();
            std::thread::spawn(move || {
                let mut conn = connect(addr);
                let mut latencies = Vec::new();
                let mut errors = 0;
                let expected = if kind == "new" { 200 } else { 202 };
                let mut n = 0u64;
                while Instant::now() < deadline {
                    let id = if kind == "new" {
                        format!("{tag}-{run}-{client}-{n}")
                    } else {
                        "dup-fixed".to_owned()
                    };
                    n += 1;
                    let body = sale_body(&id);
                    let sent = Instant::now();
                    let (status, reconnect) = post(&mut conn, &body);
                    latencies.push(sent.elapsed().as_micros() as u64);
                    if status != expected {
                        errors += 1;
                    }
                    if reconnect {
                        conn = connect(addr);
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut sample = Sample {
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
        errors: 0,
    };
    for handle in handles {
        let (latencies, errors) = handle.join().expect("client thread");
        sample.latencies.extend(latencies);
        sample.errors += errors;
    }
    sample.elapsed = started.elapsed();
    sample
}

fn sale_body(id: &str) -> String {
    format!(
        r#"{{"event_type":"sale","event_id":"{id}","order_id":"ORDER_{id}","commission_amount":15.00,"sale_amount":75.00,"tracking_id":"YOyqC7"}}"#
    )
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    BufReader::new(stream)
}

/// One keep-alive request; returns the status and whether the server closed.
fn post(conn: &mut BufReader<TcpStream>, body: &str) -> (u16, bool) {
    let request = format!(
        "POST /webhooks/refersion HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if conn.get_mut().write_all(request.as_bytes()).is_err() {
        return (0, true);
    }
    let mut line = String::new();
    if conn.read_line(&mut line).unwrap_or(0) == 0 {
        return (0, true);
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    let mut close = false;
    loop {
        line.clear();
        if conn.read_line(&mut line).unwrap_or(0) == 0 {
            return (status, true);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        if lower == "connection: close" {
            close = true;
        }
    }
    let mut body = vec![0; length];
    if conn.read_exact(&mut body).is_err() {
        return (status, true);
    }
    (status, close)
}

/// The server on its own runtime thread.
struct Server {
    addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl Server {
    fn start(store: Arc<dyn Store>, config: &Config) -> Server {
        let app = Arc::new(hooklatch::App::new(store, config));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                addr_tx
                    .send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                hooklatch::serve(
                    app,
                    listener,
                    async move {
                        let _ = stopped.await;
                    },
                    Duration::from_secs(5),
                )
                .await;
            });
        });
        let addr = addr_rx.recv().expect("server address");
        Server { addr, stop, thread }
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// The sync PostgreSQL client must not run inside a tokio runtime; the bench's main
/// thread has none, but keep store work on a plain thread anyway.
fn run_off_runtime<T: Send + 'static, E: Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, E> {
    std::thread::spawn(work).join().expect("store thread")
}

fn admin_exec(url: &str, sql: &str) -> Result<(), String> {
    let url = url.to_owned();
    let sql = sql.to_owned();
    run_off_runtime(move || {
        let mut config: postgres::Config =
            url.parse().map_err(|e: postgres::Error| e.to_string())?;
        config.connect_timeout(Duration::from_secs(3));
        let mut client = config.connect(postgres::NoTls).map_err(|e| e.to_string())?;
        client
            .batch_execute(&sql)
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            })
    })
}

fn with_database(url: &str, database: &str) -> String {
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

const PGBENCH_NEW: &str = include_str!("pgbench/new.sql");
const PGBENCH_DUPLICATE: &str = include_str!("pgbench/duplicate.sql");

/// pgbench calling the same function with the same arguments, prepared, for the same
/// time and number of clients. Latencies come from pgbench's per-transaction log.
fn pgbench_ceiling(db_url: &str, kind: &str, clients: usize, seconds: u64) -> Option<Sample> {
    if Command::new("pgbench").arg("--version").output().is_err() {
        println!("pgbench not found: PostgreSQL ceiling skipped");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("process.sql");
    // The first duplicate call inserts the event; every later one is a duplicate.
    let text = if kind == "new" {
        PGBENCH_NEW
    } else {
        PGBENCH_DUPLICATE
    };
    std::fs::write(&script, text).ok()?;
    let output = Command::new("pgbench")
        .current_dir(dir.path())
        .args(["-n", "-M", "prepared", "-l", "--log-prefix=pgb"])
        .arg("-f")
        .arg(&script)
        .arg("-c")
        .arg(clients.to_string())
        .arg("-j")
        .arg(clients.min(2).to_string())
        .arg("-T")
        .arg(seconds.to_string())
        .arg("-d")
        .arg(db_url)
        .output()
        .ok()?;
    if !output.status.success() {
        println!(
            "pgbench failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(dir.path()).ok()? {
        let path = entry.ok()?.path();
        if path.file_name()?.to_string_lossy().starts_with("pgb") {
            let log = std::fs::read_to_string(path).ok()?;
            // client_id transaction_no time script_no time_epoch time_us: `time` is µs.
            latencies.extend(
                log.lines()
                    .filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()),
            );
        }
    }
    Some(Sample {
        latencies,
        elapsed: Duration::from_secs(seconds),
        errors: 0,
    })
}

mod sqlite_sql {
    pub const FIND_EVENT: &str = include_str!("../sql/sqlite/find_event.sql");
    pub const INSERT_CONVERSION: &str = include_str!("../sql/sqlite/insert_conversion.sql");
    pub const INSERT_EVENT: &str = include_str!("../sql/sqlite/insert_event.sql");
    pub const COUNT_DUPLICATE: &str = include_str!("../sql/sqlite/count_duplicate.sql");
}

/// A raw rusqlite loop running the SQLite store's own statements per event, with the
/// same durability, on one connection (SQLite has one writer whatever the clients).
fn sqlite_ceiling(path: &std::path::Path, kind: &str, seconds: u64) -> Option<Sample> {
    use rusqlite::params;
    let conn = rusqlite::Connection::open(path).ok()?;
    conn.pragma_update(None, "journal_mode", "WAL").ok()?;
    conn.pragma_update(None, "synchronous", "FULL").ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    let now = "2026-11-28T00:00:00.000000Z";
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    // Ids stay unique across phases: the store keeps every event ever seen.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let find = |id: &str| -> Option<i64> {
        conn.prepare_cached(sqlite_sql::FIND_EVENT)
            .ok()?
            .query_row(params!["refersion", id], |r| r.get(0))
            .ok()
    };
    while Instant::now() < deadline {
        let sent = Instant::now();
        if kind == "new" {
            let id = format!(
                "raw-{}",
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            conn.execute_batch("BEGIN IMMEDIATE").ok()?;
            if find(&id).is_some() {
                return None;
            }
            let conversion: i64 = conn
                .prepare_cached(sqlite_sql::INSERT_CONVERSION)
                .ok()?
                .query_row(
                    params![
                        "refersion",
                        id,
                        "ORDER",
                        "15.00",
                        "75.00",
                        None::<String>,
                        "YOyqC7",
                        now
                    ],
                    |r| r.get(0),
                )
                .ok()?;
            let _event: i64 = conn
                .prepare_cached(sqlite_sql::INSERT_EVENT)
                .ok()?
                .query_row(
                    params!["refersion", id, "sale", "{}", "fp", conversion, now],
                    |r| r.get(0),
                )
                .ok()?;
            conn.execute_batch("COMMIT").ok()?;
        } else {
            let id = find("dup-fixed")?;
            conn.pragma_update(None, "synchronous", "NORMAL").ok()?;
            conn.prepare_cached(sqlite_sql::COUNT_DUPLICATE)
                .ok()?
                .execute(params![id, now])
                .ok()?;
            conn.pragma_update(None, "synchronous", "FULL").ok()?;
        }
        latencies.push(sent.elapsed().as_micros() as u64);
    }
    Some(Sample {
        latencies,
        elapsed: started.elapsed(),
        errors: 0,
    })
}
