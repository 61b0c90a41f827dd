//! Throughput, latency and server CPU per request of the real release binary, measured
//! the way `../shared/bench/matrix` measures it, beside the ceiling of the store alone.
//!
//! ```sh
//! cargo bench --bench throughput                        # both stores, 5 s per phase, 1 and 64 clients
//! cargo bench --bench throughput -- --backends sqlite --seconds 3
//! cargo bench --bench throughput -- --http-ceiling /tmp/ceiling-target/release/http-ceiling
//! cargo bench --bench throughput -- --soak 300          # server RSS over 5 minutes of mixed load
//! ```
//!
//! The server is `target/release/hooklatch` run as a child process on a free loopback
//! port with `RUST_LOG=warn`, so what is measured is what ships and what the shared
//! instrument (wrk + `load.lua`) measures. An earlier version of this bench ran the
//! library in-process and sent every duplicate with the body it was first delivered
//! with, while `load.lua` changes `order_id` on every repeat, which makes each one a
//! conflict that the store keeps durably; the two then reported different work under
//! one name (see README "Benchmarks").
//!
//! Scenarios, with `load.lua`'s bodies and ids:
//! - `new`: every event id unique (expects 200);
//! - `dup`: 16 ids delivered once before measuring, then repeated with another
//!   `order_id` each time (expects 202; the server answers these as conflicts);
//! - `same`: the same 16 ids repeated with exactly their first body (expects 202, true
//!   duplicates); not in `load.lua`, opt in with `--scenarios new,dup,same`;
//! - `mixed`: every 5th request a `dup`, the rest `new` (used by `--soak`).
//!
//! Per phase: requests/s, p50, p99, errors (socket errors and any status but the
//! expected one), server CPU µs per request (utime + stime of the server process from
//! `/proc/<pid>/stat`, the figure that stays steady on a shared machine), database CPU
//! µs per request on PostgreSQL (the backends serving the bench's database), and the
//! cores other tenants used meanwhile. The store ceilings run after the server stops:
//! - PostgreSQL: `pgbench -M prepared` calling `process_webhook_idempotently` with the
//!   server's arguments (`benches/pgbench/*.sql`);
//! - SQLite: a raw rusqlite loop with the group-commit shape of the store's writer
//!   (64 events per transaction, each in a savepoint, `synchronous=FULL`) for new
//!   events, and one point `SELECT` (`find_event.sql`) per repeated delivery.
//!
//! PostgreSQL comes from `HOOKLATCH_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the bench creates and drops its own
//! database. Timings live here, never in pass/fail tests.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::pg::with_database;
use common::process_ticks;
use common::server::Server;

const DEFAULT_PG: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SERVER: &str = env!("CARGO_BIN_EXE_hooklatch");
/// `load.lua`'s default duplicate set size and mixed ratio.
const DUP_IDS: u64 = 16;
const MIXED_EVERY: u64 = 5;
/// Unmeasured load before each phase, as `matrix` does (`--warmup 2s`).
const WARMUP: Duration = Duration::from_secs(2);
/// Events per transaction in the SQLite ceiling: the writer's batch limit.
const SQLITE_BATCH: usize = 64;

struct Args {
    backends: Vec<String>,
    seconds: u64,
    soak: u64,
    clients: Vec<usize>,
    scenarios: Vec<Scenario>,
    http_ceiling: Option<PathBuf>,
}

fn args() -> Args {
    let mut args = Args {
        backends: vec!["sqlite".into(), "postgres".into()],
        seconds: 5,
        soak: 0,
        clients: vec![1, 64],
        scenarios: vec![Scenario::New, Scenario::Dup],
        http_ceiling: None,
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
            "--scenarios" => {
                args.scenarios = value()
                    .split(',')
                    .map(|s| Scenario::parse(s).expect("--scenarios new,dup,same,mixed"))
                    .collect()
            }
            "--http-ceiling" => args.http_ceiling = Some(PathBuf::from(value())),
            // cargo bench passes --bench to every bench binary.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    New,
    Dup,
    Same,
    Mixed,
}

impl Scenario {
    fn parse(name: &str) -> Option<Scenario> {
        Some(match name {
            "new" => Scenario::New,
            "dup" => Scenario::Dup,
            "same" => Scenario::Same,
            "mixed" => Scenario::Mixed,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Scenario::New => "new",
            Scenario::Dup => "dup",
            Scenario::Same => "same",
            Scenario::Mixed => "mixed",
        }
    }

    /// `load.lua`'s `request()`: `tid` is the client thread's number and `counter`
    /// counts that thread's requests from 1.
    fn body(self, run: &str, dup_set: &str, tid: u64, counter: u64) -> String {
        let repeat = match self {
            Scenario::New => false,
            Scenario::Dup | Scenario::Same => true,
            Scenario::Mixed => counter.is_multiple_of(MIXED_EVERY),
        };
        if !repeat {
            return sale_body(&format!("new-{run}-{tid}-{counter}"), &counter.to_string());
        }
        let i = (counter + tid) % DUP_IDS;
        let order = match self {
            Scenario::Same => format!("SEED_{i}"),
            _ => counter.to_string(),
        };
        sale_body(&format!("dup-{dup_set}-{i}"), &order)
    }

    fn accepts(self, status: u16) -> bool {
        match self {
            Scenario::New => status == 200,
            Scenario::Dup | Scenario::Same => status == 202,
            Scenario::Mixed => status == 200 || status == 202,
        }
    }
}

/// `load.lua`'s body; seeds carry `order_id` `ORDER_SEED_<i>`.
fn sale_body(id: &str, order: &str) -> String {
    format!(
        r#"{{"event_type":"sale","event_id":"{id}","order_id":"ORDER_{order}","commission_amount":15.00,"sale_amount":75.00,"tracking_id":"YOyqC7"}}"#
    )
}

/// One phase: latencies in microseconds and the answers seen.
#[derive(Default)]
struct Sample {
    latencies: Vec<u64>,
    elapsed: Duration,
    errors: usize,
    conflicts: usize,
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

/// A measured server phase with the CPU it cost.
struct Phase {
    scenario: Scenario,
    clients: usize,
    sample: Sample,
    server_us: f64,
    db_us: Option<f64>,
    client_us: f64,
    other_cores: f64,
}

fn main() {
    let args = args();
    println!(
        "hooklatch throughput bench: {} s per phase after {} s warm-up, clients {:?}, server {SERVER}",
        args.seconds,
        WARMUP.as_secs(),
        args.clients
    );
    let http_ceiling = args.http_ceiling.as_deref().map(|path| {
        let mut server = Server::launch(path, &[("MODE", "echo".into())], "/healthz");
        let clients = args.clients.iter().copied().max().unwrap_or(64);
        let phase = measure(&mut server, Scenario::New, clients, &args, None);
        server.stop();
        println!(
            "warp HTTP ceiling ({}, MODE=echo), {clients} clients: {:.0} req/s, server CPU {:.1} µs/req, client {:.1} µs/req, other tenants {:.2} cores",
            path.display(),
            phase.sample.rate(),
            phase.server_us,
            phase.client_us,
            phase.other_cores
        );
        phase.sample.rate()
    });
    println!(
        "{:<9} {:<6} {:>7} {:>8} {:>9} {:>8} {:>8} {:>7} {:>9} {:>11} {:>9} {:>11} {:>6} {:>10} {:>7} {:>6}",
        "store",
        "kind",
        "clients",
        "",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "conflicts",
        "srv µs/req",
        "db µs/req",
        "client µs/req",
        "other",
        "ceiling/s",
        "ratio",
        "/warp"
    );
    for backend in &args.backends {
        match backend.as_str() {
            "sqlite" => bench_sqlite(&args, http_ceiling),
            "postgres" => bench_postgres(&args, http_ceiling),
            other => panic!("unknown backend {other}"),
        }
    }
    println!(
        "srv/db/client µs/req: CPU of the server process / of the database backends / of this \
         bench per request; other: cores other tenants used during the phase"
    );
}

fn bench_sqlite(args: &Args, http_ceiling: Option<f64>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.db");
    let url = format!("sqlite://{}", path.display());
    let phases = run_server_phases(args, &[("DATABASE_URL", url)], None);
    print_phases("sqlite", phases, http_ceiling, |scenario, _| {
        sqlite_ceiling(&path, scenario, args.seconds)
    });
}

fn bench_postgres(args: &Args, http_ceiling: Option<f64>) {
    let admin =
        std::env::var("HOOKLATCH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_PG.to_owned());
    let name = format!("hooklatch_bench_{}", std::process::id());
    // Two calls: a multi-statement batch is one transaction, which DROP DATABASE refuses.
    let created = common::pg::exec(&admin, &format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|()| common::pg::exec(&admin, &format!("CREATE DATABASE {name}")));
    if let Err(e) = created {
        println!("postgres  SKIPPED: no PostgreSQL at {admin}: {e}");
        return;
    }
    let db_url = with_database(&admin, &name);
    let phases = run_server_phases(args, &[("DATABASE_URL", db_url.clone())], Some(&name));
    print_phases("postgres", phases, http_ceiling, |scenario, clients| {
        pgbench_ceiling(&db_url, scenario, clients, args.seconds)
    });
    let _ = common::pg::exec(
        &admin,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    );
}

/// Starts the server, seeds the duplicate set, runs every phase (and the soak), stops it.
fn run_server_phases(args: &Args, env: &[(&str, String)], pg_database: Option<&str>) -> Vec<Phase> {
    let mut server = Server::launch(Path::new(SERVER), env, "/healthz");
    let mut phases = Vec::new();
    for &clients in &args.clients {
        for &scenario in &args.scenarios {
            phases.push(measure(&mut server, scenario, clients, args, pg_database));
        }
    }
    if args.soak > 0 {
        soak(&mut server, Duration::from_secs(args.soak));
    }
    server.stop();
    phases
}

/// Seeds a fresh duplicate set (as `load` does before each run), warms up, then measures
/// one phase with CPU read before and after.
fn measure(
    server: &mut Server,
    scenario: Scenario,
    clients: usize,
    args: &Args,
    pg_database: Option<&str>,
) -> Phase {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let run = format!(
        "{}-{}",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    );
    let dup_set = run.clone();
    if scenario != Scenario::New {
        for i in 0..DUP_IDS {
            let body = sale_body(&format!("dup-{dup_set}-{i}"), &format!("SEED_{i}"));
            let (status, _, _) = post(&mut connect(server.addr), &body);
            assert!(
                (200..300).contains(&status),
                "seeding duplicate id {i} failed: HTTP {status}"
            );
        }
    }
    let warm = load(
        server,
        scenario,
        clients,
        WARMUP,
        &format!("w{run}"),
        &dup_set,
    );
    assert!(!warm.latencies.is_empty(), "no answer during warm-up");
    let before = CpuSnapshot::take(server.pid, pg_database);
    let sample = load(
        server,
        scenario,
        clients,
        Duration::from_secs(args.seconds),
        &format!("r{run}"),
        &dup_set,
    );
    let after = CpuSnapshot::take(server.pid, pg_database);
    let n = sample.latencies.len().max(1) as f64;
    let per_req = |ticks: u64| ticks as f64 / common::clock_ticks() * 1e6 / n;
    let machine = (after.machine - before.machine) as f64 / common::clock_ticks();
    let known = after.server + after.db.unwrap_or(0) + after.bench
        - before.server
        - before.db.unwrap_or(0)
        - before.bench;
    let other =
        (machine - known as f64 / common::clock_ticks()).max(0.0) / sample.elapsed.as_secs_f64();
    Phase {
        scenario,
        clients,
        server_us: per_req(after.server - before.server),
        db_us: after.db.zip(before.db).map(|(a, b)| per_req(a - b)),
        client_us: per_req(after.bench - before.bench),
        other_cores: other,
        sample,
    }
}

fn print_phases(
    backend: &str,
    phases: Vec<Phase>,
    http_ceiling: Option<f64>,
    ceiling: impl Fn(Scenario, usize) -> Option<Sample>,
) {
    for mut p in phases {
        let mut ceiling = ceiling(p.scenario, p.clients);
        let rate = p.sample.rate();
        let ceiling_rate = ceiling.as_ref().map(Sample::rate);
        let dash = || "-".to_owned();
        println!(
            "{backend:<9} {:<6} {:>7} {:>8} {:>9.0} {:>8.3} {:>8.3} {:>7} {:>9} {:>11.1} {:>9} {:>11.1} {:>6.2} {:>10} {:>7} {:>6}",
            p.scenario.name(),
            p.clients,
            "server",
            rate,
            p.sample.percentile(0.50),
            p.sample.percentile(0.99),
            p.sample.errors,
            p.sample.conflicts,
            p.server_us,
            p.db_us.map_or_else(dash, |d| format!("{d:.1}")),
            p.client_us,
            p.other_cores,
            ceiling_rate.map_or_else(dash, |c| format!("{c:.0}")),
            ceiling_rate.map_or_else(dash, |c| format!("{:.2}", rate / c)),
            http_ceiling.map_or_else(dash, |w| format!("{:.2}", rate / w)),
        );
        if let Some(c) = ceiling.as_mut() {
            println!(
                "{backend:<9} {:<6} {:>7} {:>8} {:>9.0} {:>8.3} {:>8.3} {:>7}",
                p.scenario.name(),
                p.clients,
                "ceiling",
                c.rate(),
                c.percentile(0.50),
                c.percentile(0.99),
                c.errors
            );
        }
    }
}

/// Sustained mixed load (80 % new, 20 % repeats, 16 clients) with the server's RSS
/// sampled at the start, every 100 s, and at the end.
fn soak(server: &mut Server, duration: Duration) {
    let warm = load(
        server,
        Scenario::Mixed,
        16,
        Duration::from_secs(5),
        "soakw",
        "soak",
    );
    let start_rss = rss_kib(server.pid);
    println!(
        "soak: warm-up {} requests, server RSS at start {start_rss} KiB",
        warm.latencies.len()
    );
    let started = Instant::now();
    let (mut total, mut errors, mut round) = (0, 0, 0);
    while started.elapsed() < duration {
        let sample = load(
            server,
            Scenario::Mixed,
            16,
            Duration::from_secs(10),
            &format!("soak{round}"),
            "soak",
        );
        round += 1;
        total += sample.latencies.len();
        errors += sample.errors;
        if round % 10 == 0 {
            println!(
                "soak: {:>4} s, {total} requests, {errors} errors, server RSS {} KiB",
                started.elapsed().as_secs(),
                rss_kib(server.pid)
            );
        }
    }
    let end_rss = rss_kib(server.pid);
    println!(
        "soak: {} s, {total} requests, {errors} errors; server RSS start {start_rss} KiB, end {end_rss} KiB ({:+.1}%)",
        started.elapsed().as_secs(),
        (end_rss as f64 - start_rss as f64) * 100.0 / start_rss.max(1) as f64
    );
}

/// `clients` keep-alive connections for `duration`, driven like `wrk -t 2`: an event
/// loop on at most two threads, so the client takes little of the shared cores, as wrk
/// does.
fn load(
    server: &mut Server,
    scenario: Scenario,
    clients: usize,
    duration: Duration,
    run: &str,
    dup_set: &str,
) -> Sample {
    let threads = clients.clamp(1, 2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("client runtime");
    let addr = server.addr;
    let started = Instant::now();
    let deadline = started + duration;
    // wrk numbers its threads, not its connections, and each thread's Lua state counts
    // the requests of all its connections: ids come in as many runs as threads. That
    // matters: 64 interleaved runs of new ids dirty many more index pages per commit.
    let counters: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let parts = runtime.block_on(async {
        let tasks: Vec<_> = (0..clients)
            .map(|connection| {
                let (run, dup_set) = (run.to_owned(), dup_set.to_owned());
                let counters = counters.clone();
                let tid = connection % threads;
                tokio::spawn(async move {
                    let ids = (run.as_str(), dup_set.as_str());
                    client(addr, scenario, ids, tid as u64, &counters[tid], deadline).await
                })
            })
            .collect();
        let mut parts = Vec::new();
        for task in tasks {
            parts.push(task.await.expect("client task"));
        }
        parts
    });
    let mut sample = Sample::default();
    for part in parts {
        sample.latencies.extend(part.latencies);
        sample.errors += part.errors;
        sample.conflicts += part.conflicts;
    }
    sample.elapsed = started.elapsed();
    server.check_alive();
    sample
}

/// One connection sending `load.lua`'s requests back to back until `deadline`.
async fn client(
    addr: SocketAddr,
    scenario: Scenario,
    (run, dup_set): (&str, &str),
    tid: u64,
    counter: &AtomicU64,
    deadline: Instant,
) -> Sample {
    let mut sample = Sample::default();
    let mut conn = None;
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let counter = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let body = scenario.body(run, dup_set, tid, counter);
        let request = format!(
            "POST /webhooks/refersion HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let sent = Instant::now();
        if conn.is_none() {
            conn = tokio::net::TcpStream::connect(addr).await.ok();
            if let Some(stream) = &conn {
                let _ = stream.set_nodelay(true);
            }
        }
        let answer = match &conn {
            Some(stream) => exchange(stream, request.as_bytes(), &mut buf).await,
            None => None,
        };
        sample.latencies.push(sent.elapsed().as_micros() as u64);
        let (status, conflict, close) = answer.unwrap_or((0, false, true));
        sample.errors += usize::from(!scenario.accepts(status));
        sample.conflicts += usize::from(conflict);
        if close {
            conn = None;
        }
    }
    sample
}

/// Writes one request and reads its answer: status, conflict header, connection closed.
/// `None` on a socket error. Uses readiness + `try_*`, which tokio's `net` feature has.
async fn exchange(
    stream: &tokio::net::TcpStream,
    mut request: &[u8],
    buf: &mut Vec<u8>,
) -> Option<(u16, bool, bool)> {
    while !request.is_empty() {
        stream.writable().await.ok()?;
        match stream.try_write(request) {
            Ok(n) => request = &request[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
    buf.clear();
    let mut chunk = [0u8; 4096];
    let mut head: Option<(usize, u16, usize, bool, bool)> = None;
    loop {
        if head.is_none() {
            head = parse_head(buf);
        }
        if let Some((head_len, status, length, conflict, close)) = head
            && buf.len() >= head_len + length
        {
            return Some((status, conflict, close));
        }
        stream.readable().await.ok()?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return None,
        }
    }
}

/// Head length, status, content length, conflict and close flags, once the whole head
/// is in `buf`.
fn parse_head(buf: &[u8]) -> Option<(usize, u16, usize, bool, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let (mut length, mut conflict, mut close) = (0, false, false);
    for line in lines {
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        conflict |= line == "x-idempotency-conflict: true";
        close |= line == "connection: close";
    }
    Some((end, status, length, conflict, close))
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    BufReader::new(stream)
}

/// One keep-alive request; returns the status (0 on a socket error), whether the answer
/// was a conflict, and whether the connection must be reopened.
fn post(conn: &mut BufReader<TcpStream>, body: &str) -> (u16, bool, bool) {
    let request = format!(
        "POST /webhooks/refersion HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    if conn.get_mut().write_all(request.as_bytes()).is_err() {
        return (0, false, true);
    }
    let mut line = String::new();
    if conn.read_line(&mut line).unwrap_or(0) == 0 {
        return (0, false, true);
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (mut length, mut close, mut conflict) = (0usize, false, false);
    loop {
        line.clear();
        if conn.read_line(&mut line).unwrap_or(0) == 0 {
            return (status, conflict, true);
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        close |= lower == "connection: close";
        conflict |= lower == "x-idempotency-conflict: true";
    }
    let mut body = vec![0; length];
    if conn.read_exact(&mut body).is_err() {
        return (status, conflict, true);
    }
    (status, conflict, close)
}

/// CPU ticks from /proc: the server process, the database backends of the bench's own
/// database (PostgreSQL), this bench process (the client), and the whole machine.
struct CpuSnapshot {
    server: u64,
    db: Option<u64>,
    bench: u64,
    machine: u64,
}

impl CpuSnapshot {
    fn take(server: u32, pg_database: Option<&str>) -> CpuSnapshot {
        CpuSnapshot {
            server: process_ticks(&server.to_string()),
            db: pg_database.map(pg_backend_ticks),
            bench: process_ticks("self"),
            machine: machine_ticks(),
        }
    }
}

/// Busy ticks of the whole machine (everything in the first /proc/stat line but idle
/// and iowait), as `load` counts them.
fn machine_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|v| v.parse().ok())
        .collect();
    values
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum()
}

/// CPU of the PostgreSQL backends connected to `database`, found by their process title
/// (`postgres: user database host(port) state`). The server's pool keeps its backends
/// for the whole run, so a before/after difference is the work of the phase. Shared
/// processes (WAL writer, checkpointer) serve other databases too and are not counted.
fn pg_backend_ticks(database: &str) -> u64 {
    common::pg::backends(&format!(" {database} "))
        .iter()
        .map(|pid| process_ticks(pid))
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

const PGBENCH_NEW: &str = include_str!("pgbench/new.sql");
const PGBENCH_DUPLICATE: &str = include_str!("pgbench/duplicate.sql");

/// pgbench calling the same function with the same arguments, prepared, for the same
/// time and number of clients. Latencies come from pgbench's per-transaction log.
fn pgbench_ceiling(
    db_url: &str,
    scenario: Scenario,
    clients: usize,
    seconds: u64,
) -> Option<Sample> {
    if Command::new("pgbench").arg("--version").output().is_err() {
        println!("pgbench not found: PostgreSQL ceiling skipped");
        return None;
    }
    let dir = tempfile::tempdir().ok()?;
    let script = dir.path().join("process.sql");
    // The first duplicate call inserts the event; every later one is a duplicate.
    let text = match scenario {
        Scenario::New | Scenario::Mixed => PGBENCH_NEW,
        Scenario::Dup | Scenario::Same => PGBENCH_DUPLICATE,
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
        ..Sample::default()
    })
}

mod sqlite_sql {
    pub const FIND_EVENT: &str = include_str!("../sql/sqlite/find_event.sql");
    pub const INSERT_CONVERSION: &str = include_str!("../sql/sqlite/insert_conversion.sql");
    pub const INSERT_EVENT: &str = include_str!("../sql/sqlite/insert_event.sql");
}

/// The SQLite store's own statements with the writer's durability, on the database the
/// server used (it is stopped by now). New events: batches of `SQLITE_BATCH` events per
/// transaction at `synchronous=FULL`, each in its own savepoint, as the writer thread
/// commits them; every event of a batch waits for its commit, so its latency is the
/// batch's. Repeats: one point `SELECT` each, the read that decides a duplicate.
fn sqlite_ceiling(path: &Path, scenario: Scenario, seconds: u64) -> Option<Sample> {
    let conn = rusqlite::Connection::open(path).ok()?;
    conn.pragma_update(None, "journal_mode", "WAL").ok()?;
    conn.pragma_update(None, "synchronous", "FULL").ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut errors = 0;
    if scenario == Scenario::New || scenario == Scenario::Mixed {
        // Ids stay unique across phases: the store keeps every event ever seen.
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let now = "2026-11-28T00:00:00.000000Z";
        while Instant::now() < deadline {
            let sent = Instant::now();
            conn.execute_batch("BEGIN IMMEDIATE").ok()?;
            for _ in 0..SQLITE_BATCH {
                let id = format!("raw-{}", NEXT.fetch_add(1, Ordering::Relaxed));
                conn.execute_batch("SAVEPOINT event").ok()?;
                let found = conn
                    .prepare_cached(sqlite_sql::FIND_EVENT)
                    .ok()?
                    .query_row(rusqlite::params!["raw", id], |r| r.get::<_, i64>(0))
                    .ok();
                if found.is_some() {
                    return None;
                }
                let conversion: i64 = conn
                    .prepare_cached(sqlite_sql::INSERT_CONVERSION)
                    .ok()?
                    .query_row(
                        rusqlite::params![
                            "raw",
                            id,
                            "ORDER",
                            "15.00",
                            "75.00",
                            None::<String>,
                            "YOyqC7",
                            None::<String>,
                            now
                        ],
                        |r| r.get(0),
                    )
                    .ok()?;
                conn.prepare_cached(sqlite_sql::INSERT_EVENT)
                    .ok()?
                    .query_row(
                        rusqlite::params!["raw", id, "sale", "{}", "fp", conversion, now],
                        |r| r.get::<_, i64>(0),
                    )
                    .ok()?;
                conn.execute_batch("RELEASE event").ok()?;
            }
            conn.execute_batch("COMMIT").ok()?;
            let waited = sent.elapsed().as_micros() as u64;
            latencies.extend(std::iter::repeat_n(waited, SQLITE_BATCH));
        }
    } else {
        // Ids the server phases seeded, so every read finds its row.
        let ids: Vec<String> = conn
            .prepare("SELECT external_event_id FROM webhook_events WHERE external_event_id LIKE 'dup-%' LIMIT 16")
            .ok()?
            .query_map([], |r| r.get(0))
            .ok()?
            .collect::<Result<_, _>>()
            .ok()?;
        if ids.is_empty() {
            return None;
        }
        let mut find = conn.prepare_cached(sqlite_sql::FIND_EVENT).ok()?;
        for id in ids.iter().cycle() {
            if Instant::now() >= deadline {
                break;
            }
            let sent = Instant::now();
            if find
                .query_row(rusqlite::params!["refersion", id], |r| r.get::<_, i64>(0))
                .is_err()
            {
                errors += 1;
            }
            latencies.push(sent.elapsed().as_micros() as u64);
        }
    }
    Some(Sample {
        latencies,
        elapsed: started.elapsed(),
        errors,
        ..Sample::default()
    })
}
