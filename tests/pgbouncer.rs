//! hooklatch behind a real PgBouncer in transaction mode (SPEC §10), as Debian ships it
//! (1.18: no named prepared statements across transactions, and `options` refused as a
//! startup parameter unless listed in `ignore_startup_parameters`). With
//! `pg_prepared_statements = false`, two instances with more connections between them
//! than PgBouncer has server connections get 500 mixed deliveries right: new events,
//! duplicates, conflicts and reads.
//!
//! Without a `pgbouncer` binary the test says SKIPPED on the terminal; with `CI=true` it
//! fails instead (`.ci/run` installs it).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Backend, TestDb, in_ci, post, replace_database, sale};
use hooklatch::App;
use hooklatch::config::{Config, DatabaseUrl};
use hooklatch::model::{EventId, Source};
use hooklatch::store::{self, StoreOptions, run_blocking};
use warp::http::StatusCode;

/// Server connections PgBouncer keeps per database and user: fewer than the instances'
/// pools together (2 × 4), so server connections pass from client to client.
const SERVER_CONNECTIONS: u32 = 2;

#[test]
fn five_hundred_mixed_deliveries_through_pgbouncer_in_transaction_mode_are_all_right() {
    let Some(bouncer) = PgBouncer::start() else {
        return;
    };
    // Outside the runtime: the harness's sync clients must not run on it.
    let Some(db) = TestDb::fresh(Backend::Postgres, "pgbouncer") else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(deliveries(&db, &bouncer));
    let totals = db.totals();
    assert_eq!((totals.events, totals.conversions), (200, 200));
    assert_eq!(totals.conflicts, 100);
    drop(runtime);
    drop(bouncer);
}

async fn deliveries(db: &TestDb, bouncer: &PgBouncer) {
    let DatabaseUrl::Postgres(direct) = &db.url else {
        unreachable!()
    };
    let database = direct.rsplit('/').next().expect("database name").to_owned();
    let through = DatabaseUrl::Postgres(replace_database(
        &format!("postgres://postgres@127.0.0.1:{}/x", bouncer.port),
        &database,
    ));
    let options = StoreOptions {
        pool_size: 4,
        pg_prepared_statements: false,
        ..StoreOptions::default()
    };
    let mut apps = Vec::new();
    for _ in 0..2 {
        let (url, options) = (through.clone(), options.clone());
        let store = run_blocking(move || store::open(&url, &options))
            .await
            .expect("open through PgBouncer");
        let config = Config {
            database_url: through.clone(),
            ..db.config()
        };
        apps.push(Arc::new(App::new(store, &config)));
    }
    // Migrating through the pooler too: its lock is a transaction's.
    {
        let store = apps[0].store.clone();
        run_blocking(move || store.migrate())
            .await
            .expect("migrate through PgBouncer");
    }

    // 200 new sales, then 150 duplicates of the first 150, 2 conflicting versions of
    // each of the last 50, and 50 reads: 500 in all, 8 at a time over both instances.
    let mut deliveries: Vec<(String, String, Expect)> = (0..200)
        .map(|i| {
            (
                format!("pgb-{i}"),
                sale(&format!("pgb-{i}"), "5.00"),
                Expect::New,
            )
        })
        .collect();
    let first = run_all(&apps, deliveries.clone()).await;
    deliveries.clear();
    for i in 0..150 {
        let id = format!("pgb-{i}");
        deliveries.push((id.clone(), sale(&id, "5.00"), Expect::Duplicate));
    }
    for i in 150..200 {
        let id = format!("pgb-{i}");
        deliveries.push((id.clone(), sale(&id, "6.00"), Expect::Conflict));
        deliveries.push((id.clone(), sale(&id, "7.00"), Expect::Conflict));
    }
    for i in 0..50 {
        deliveries.push((format!("pgb-{i}"), String::new(), Expect::Read));
    }
    let second = run_all(&apps, deliveries).await;
    assert_eq!(first + second, 500);

    let refersion = Source::parse("refersion").unwrap();
    let (store, source) = (db.store.clone(), refersion.clone());
    let counted = wait_until(Duration::from_secs(10), move || {
        (0..150).all(|i| {
            let id = EventId::parse(&format!("pgb-{i}"), "id").unwrap();
            store
                .event(&source, &id)
                .ok()
                .flatten()
                .is_some_and(|e| e.delivery_count == 2)
        })
    })
    .await;
    assert!(counted, "every duplicate is counted once");
    drop(apps);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    New,
    Duplicate,
    Conflict,
    Read,
}

/// Sends every delivery, 8 at a time over the instances in turn, checking each answer;
/// returns how many were sent.
async fn run_all(apps: &[Arc<App>], deliveries: Vec<(String, String, Expect)>) -> usize {
    let n = deliveries.len();
    let queue = Arc::new(parking_lot::Mutex::new(deliveries));
    let mut tasks = Vec::new();
    for task in 0..8 {
        let app = apps[task % apps.len()].clone();
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Some((id, body, expect)) = queue.lock().pop() else {
                    return;
                };
                check(&app, &id, &body, expect).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("sender");
    }
    n
}

async fn check(app: &Arc<App>, id: &str, body: &str, expect: Expect) {
    if expect == Expect::Read {
        let store = app.store.clone();
        let event_id = EventId::parse(id, "id").unwrap();
        let found =
            run_blocking(move || store.event(&Source::parse("refersion").unwrap(), &event_id))
                .await
                .unwrap_or_else(|e| panic!("{id}: read through PgBouncer: {e}"));
        assert!(found.is_some(), "{id}: not found");
        return;
    }
    let reply = post(app, "/webhooks/refersion", &[], body).await;
    let want = match expect {
        Expect::New => StatusCode::OK,
        _ => StatusCode::ACCEPTED,
    };
    assert_eq!(reply.status, want, "{id} ({expect:?}): {:?}", reply.body);
    let conflict = reply.header("X-Idempotency-Conflict");
    assert_eq!(
        conflict.is_some(),
        expect == Expect::Conflict,
        "{id} ({expect:?})"
    );
}

async fn wait_until(limit: Duration, done: impl Fn() -> bool + Send + Clone + 'static) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let check = done.clone();
        if run_blocking(move || Ok(check())).await.unwrap_or(false) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `pgbouncer` in transaction mode in front of the tests' PostgreSQL, with Debian's
/// defaults otherwise (no `ignore_startup_parameters`), removed when dropped.
struct PgBouncer {
    port: u16,
    pidfile: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl PgBouncer {
    fn start() -> Option<PgBouncer> {
        let Some(binary) = ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
        else {
            if in_ci() {
                panic!("CI=true but pgbouncer is not installed");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no pgbouncer): pgbouncer::five_hundred_mixed_deliveries"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("hooklatch-pgbouncer-")
            .tempdir()
            .expect("temp dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let admin = common::postgres_admin_url();
        let server = admin
            .split_once('@')
            .map_or(admin.as_str(), |(_, rest)| rest);
        let (host_port, _) = server.split_once('/').unwrap_or((server, ""));
        let (host, server_port) = host_port.rsplit_once(':').unwrap_or((host_port, "5432"));
        let ini = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {users}\npool_mode = transaction\n\
                 default_pool_size = {SERVER_CONNECTIONS}\nmax_client_conn = 100\n\
                 logfile = {log}\npidfile = {pid}\n",
                users = dir.path().join("users.txt").display(),
                log = dir.path().join("pgbouncer.log").display(),
                pid = dir.path().join("pgbouncer.pid").display(),
            ),
        )
        .expect("pgbouncer.ini");
        std::fs::write(dir.path().join("users.txt"), "\"postgres\" \"\"\n").expect("users");
        // PgBouncer refuses to run as root.
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        let mut command = if root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success());
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&binary);
            c
        } else {
            Command::new(&binary)
        };
        let child = command
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = PgBouncer {
            port,
            pidfile: dir.path().join("pgbouncer.pid"),
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "pgbouncer did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(bouncer)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // pgbouncer itself, not the runuser in front of it, which cannot pass SIGKILL on.
        if let Ok(pid) = std::fs::read_to_string(&self.pidfile) {
            let _ = Command::new("kill").args(["-TERM", pid.trim()]).status();
        }
        let _ = self.child.wait();
    }
}
