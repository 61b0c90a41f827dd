//! What the store owes across faults and upkeep (issue 17, items 1–6), on both stores:
//! a payload still owed to the app survives pruning, duplicate counts reach the database
//! after a failed commit, the SQLite writer outlives a panic, the backlog gauge walks
//! only the backlog, and SIGTERM commits pending counts even while an abandoned task
//! still holds the store. Faults are injected the way tests/faults.rs does: another client
//! holding a lock, or a job that fails on the writer thread.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::forward_app::TestApp;
use common::{Backend, TestDb, post};
use hooklatch::App;
use hooklatch::config::{Config, DatabaseUrl, SourceSettings};
use hooklatch::forward::{ForwardConfig, Forwarder};
use hooklatch::model::{EventId, NewEvent, Outcome, Source};
use hooklatch::read::Timestamp;
use hooklatch::sources::Preset;
use hooklatch::store::{
    AdminReads, Receiving, SqliteStore, StoreError, StoreOptions, run_blocking,
};

contract!(
    pruning_keeps_every_payload_still_owed_to_the_app_and_dry_run_agrees,
    the_backlog_gauge_walks_only_pending_and_failed_entries,
);

/// Generous bound on anything that should take milliseconds here.
const PATIENCE: Duration = Duration::from_secs(30);

/// An app forwarding `shop` to `target`; `acme` does not forward.
fn forwarding_app(db: &TestDb, target: &TestApp) -> Arc<App> {
    let mut config: Config = db.config();
    config.sources.insert(
        "shop",
        SourceSettings {
            forward_to: Some(target.url()),
            ..SourceSettings::new(Preset::Standard, Vec::new())
        },
    );
    Arc::new(App::new(db.store.clone(), &config))
}

fn one_attempt() -> ForwardConfig {
    ForwardConfig {
        secret: None,
        timeout: Duration::from_secs(5),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(80),
        max_attempts: 1,
        concurrency: 1,
        pause_after: 1000,
        alert_to: None,
    }
}

async fn forward_state(db: &TestDb, id: &str) -> Option<String> {
    let store = db.store.clone();
    let id = EventId::parse(id, "id").unwrap();
    run_blocking(move || store.forward_state(&Source::parse("shop").unwrap(), &id))
        .await
        .unwrap()
        .map(|info| info.state)
}

async fn wait_for_forward(db: &TestDb, id: &str, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    while forward_state(db, id).await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "{id} never became {want}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn payload_kept(db: &TestDb, source: &str, id: &str) -> bool {
    let store = db.store.clone();
    let (source, id) = (
        Source::parse(source).unwrap(),
        EventId::parse(id, "id").unwrap(),
    );
    run_blocking(move || store.event(&source, &id))
        .await
        .unwrap()
        .expect("the event is stored")
        .payload
        .is_some()
}

async fn deliver(app: &Arc<App>, source: &str, id: &str) {
    let body = format!(r#"{{"id":"{id}","type":"t"}}"#);
    let reply = post(app, &format!("/webhooks/{source}"), &[], &body).await;
    assert!(reply.status.is_success(), "{id}: {:?}", reply.body);
}

// ---------------------------------------------------------------------------------------
// 1. Pruning never clears a payload whose forward is pending or failed (SPEC §5.2)
// ---------------------------------------------------------------------------------------

async fn pruning_keeps_every_payload_still_owed_to_the_app_and_dry_run_agrees(db: &TestDb) {
    let target = TestApp::start().await;
    let app = forwarding_app(db, &target);
    let worker = Forwarder::new(
        app.store.clone(),
        one_attempt(),
        app.sources.clone(),
        app.forward_wake.clone(),
    )
    .unwrap()
    .spawn();
    // Delivered: no longer owed.
    deliver(&app, "shop", "delivered").await;
    wait_for_forward(db, "delivered", "delivered").await;
    // Failed: the app refused its one attempt; an operator retry still needs the body.
    target.otherwise(503);
    deliver(&app, "shop", "failed").await;
    wait_for_forward(db, "failed", "failed").await;
    worker.stop().await;
    // Pending: the app has not had it yet (no worker runs now).
    deliver(&app, "shop", "pending").await;
    assert_eq!(
        forward_state(db, "pending").await.as_deref(),
        Some("pending")
    );
    // Not forwarded at all.
    deliver(&app, "acme", "plain").await;

    let store = db.store.clone();
    let (dry, pruned) = run_blocking(move || {
        let cutoff = Timestamp::ago(Duration::ZERO);
        let dry = store.prune_payloads(&cutoff, true)?;
        let pruned = store.prune_payloads(&cutoff, false)?;
        Ok((dry, pruned))
    })
    .await
    .unwrap();
    assert_eq!(
        pruned.events, 2,
        "the delivered one and the unforwarded one"
    );
    assert_eq!(
        dry.events, pruned.events,
        "--dry-run counts what prune clears"
    );
    assert!(!payload_kept(db, "shop", "delivered").await);
    assert!(!payload_kept(db, "acme", "plain").await);
    assert!(payload_kept(db, "shop", "failed").await, "owed: failed");
    assert!(payload_kept(db, "shop", "pending").await, "owed: pending");

    // Once delivered, the payload may go like any other.
    target.otherwise(200);
    let store = db.store.clone();
    run_blocking(move || store.requeue_forwards(None, true))
        .await
        .unwrap();
    let worker = Forwarder::new(
        app.store.clone(),
        one_attempt(),
        app.sources.clone(),
        app.forward_wake.clone(),
    )
    .unwrap()
    .spawn();
    wait_for_forward(db, "failed", "delivered").await;
    wait_for_forward(db, "pending", "delivered").await;
    worker.stop().await;
    let store = db.store.clone();
    let pruned = run_blocking(move || store.prune_payloads(&Timestamp::ago(Duration::ZERO), false))
        .await
        .unwrap();
    assert_eq!(pruned.events, 2);
}

// ---------------------------------------------------------------------------------------
// 6. The backlog gauge is served by an index that holds no delivered entry
// ---------------------------------------------------------------------------------------

async fn the_backlog_gauge_walks_only_pending_and_failed_entries(db: &TestDb) {
    let url = db.url.clone();
    let plan = tokio::task::spawn_blocking(move || backlog_plan(&url))
        .await
        .unwrap();
    assert!(!walks_everything(&plan), "{plan:#?}");
    // And the figures are right.
    let target = TestApp::start().await;
    let app = forwarding_app(db, &target);
    deliver(&app, "shop", "b1").await;
    deliver(&app, "shop", "b2").await;
    let store = db.store.clone();
    let backlog = run_blocking(move || store.forward_backlog()).await.unwrap();
    assert_eq!((backlog.pending, backlog.failed), (2, 0));
    assert!(backlog.oldest_pending_secs.is_some_and(|s| s >= 0.0));
}

/// Whether a step of `plan` walks the whole outbox, delivered entries included: on SQLite
/// a SCAN of it (a range is a SEARCH); on PostgreSQL a sequential scan, or an index scan
/// with no range condition on an index that holds delivered entries.
fn walks_everything(plan: &[String]) -> bool {
    const BACKLOG_ONLY: [&str; 2] = ["idx_forward_outbox_due", "idx_forward_outbox_backlog"];
    plan.iter().enumerate().any(|(i, line)| {
        let line = line.trim_start().trim_start_matches("->").trim_start();
        // Other tables the statement reads (the paused sources) are not the subject.
        if !line.contains("forward_outbox") {
            return false;
        }
        if line.starts_with("SCAN forward_outbox") || line.starts_with("Seq Scan") {
            return true;
        }
        let index = [
            "Index Scan using ",
            "Index Only Scan using ",
            "Bitmap Index Scan on ",
        ]
        .iter()
        .find_map(|step| line.strip_prefix(step))
        .and_then(|rest| rest.split_whitespace().next());
        let Some(index) = index else { return false };
        let ranged = plan
            .get(i + 1)
            .is_some_and(|next| next.trim_start().starts_with("Index Cond"));
        !BACKLOG_ONLY.contains(&index) && !ranged
    })
}

/// The query plan of the backlog statement, one line per step. PostgreSQL plans a tiny
/// table with a sequential scan whatever the indexes, so it is asked to avoid them: what
/// matters is which index it can use.
fn backlog_plan(url: &DatabaseUrl) -> Vec<String> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let sql = format!(
                "EXPLAIN QUERY PLAN {}",
                include_str!("../sql/sqlite/forward_backlog.sql")
            );
            let mut stmt = conn.prepare(&sql).unwrap();
            stmt.query_map(["2026-01-01T00:00:00.000000Z"], |row| {
                row.get::<_, String>(3)
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        }
        DatabaseUrl::Postgres(url) => {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
                client.batch_execute("SET enable_seqscan = off").unwrap();
                let sql = format!(
                    "EXPLAIN {}",
                    include_str!("../sql/postgres/forward_backlog.sql")
                );
                client
                    .query(&sql, &[])
                    .unwrap()
                    .iter()
                    .map(|row| row.get::<_, String>(0))
                    .collect()
            })
            .join()
            .unwrap()
        }
        DatabaseUrl::SqliteMemory => unreachable!(),
    }
}

// ---------------------------------------------------------------------------------------
// 2. A duplicate's count reaches the database after a failed commit (SPEC §1.5)
// ---------------------------------------------------------------------------------------

#[test]
fn sqlite_a_failed_count_commit_is_retried_without_another_delivery() {
    counts_survive_a_failed_commit(Backend::Sqlite);
}

#[test]
fn postgres_a_failed_count_commit_is_retried_without_another_delivery() {
    counts_survive_a_failed_commit(Backend::Postgres);
}

/// Another client blocks every write to the events, so the commit of a duplicate's count
/// fails (on the lock timeout) both on the store's own schedule and when a read asks for
/// it. Once the lock is gone, the count must reach a direct reader of the store with no
/// further delivery or read to wake anything up.
fn counts_survive_a_failed_commit(backend: Backend) {
    let options = StoreOptions {
        statement_timeout: Duration::from_millis(300),
        pool_size: 4,
        ..StoreOptions::default()
    };
    let Some(db) = TestDb::fresh_with(backend, "counts_retry", &options) else {
        return;
    };
    let event = new_event("counted");
    assert!(matches!(
        db.store.process(&event).unwrap(),
        Outcome::Processed(_)
    ));
    let blocker = WriteBlocker::hold(&db.url);
    assert!(matches!(
        db.store.process(&event).unwrap(),
        Outcome::Duplicate(_)
    ));
    if let DatabaseUrl::Postgres(url) = &db.url {
        // The store's own commit of the count is under way, and stuck on the lock.
        assert!(common::some_session_waits_for_a_lock(url, PATIENCE));
    }
    // A read commits pending counts first; it waits for the attempt under way, then makes
    // its own, and both fail.
    let read = db.store.event(&event.source, &event.event_id);
    assert!(read.is_err(), "the count cannot be committed yet: {read:?}");
    blocker.release();
    let deadline = Instant::now() + Duration::from_secs(5);
    while direct_delivery_count(&db.url, "counted") != 2 {
        assert!(
            Instant::now() < deadline,
            "the duplicate's count never reached the store after the failed commit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn new_event(id: &str) -> NewEvent {
    NewEvent {
        source: Source::parse("shop").unwrap(),
        event_id: EventId::parse(id, "id").unwrap(),
        event_type: Some("order.created".into()),
        payload: format!(r#"{{"id":"{id}"}}"#),
        fingerprint: format!("fp-{id}"),
        conversion: None,
        forward: false,
    }
}

/// `delivery_count` of event `id`, read straight from the database.
fn direct_delivery_count(url: &DatabaseUrl, id: &str) -> i64 {
    const SQL: &str = "SELECT delivery_count FROM webhook_events WHERE external_event_id = ";
    match url {
        DatabaseUrl::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .query_row(&format!("{SQL}?1"), [id], |row| row.get(0))
            .unwrap(),
        DatabaseUrl::Postgres(url) => {
            let (url, id) = (url.clone(), id.to_owned());
            std::thread::spawn(move || {
                let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
                client
                    .query_one(&format!("{SQL}$1"), &[&id])
                    .unwrap()
                    .get::<_, i64>(0)
            })
            .join()
            .unwrap()
        }
        DatabaseUrl::SqliteMemory => unreachable!(),
    }
}

/// Another client holding a lock that refuses every write to the events and lets reads
/// through: SQLite's write lock, PostgreSQL's EXCLUSIVE table lock.
enum WriteBlocker {
    Sqlite(rusqlite::Connection),
    Postgres(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>),
}

impl WriteBlocker {
    fn hold(url: &DatabaseUrl) -> WriteBlocker {
        match url {
            DatabaseUrl::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteBlocker::Sqlite(conn)
            }
            DatabaseUrl::Postgres(url) => {
                let (locked_tx, locked_rx) = std::sync::mpsc::channel();
                let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
                let url = url.clone();
                let holder = std::thread::spawn(move || {
                    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
                    let mut tx = client.transaction().unwrap();
                    tx.batch_execute("LOCK TABLE webhook_events IN EXCLUSIVE MODE")
                        .unwrap();
                    locked_tx.send(()).unwrap();
                    let _ = release_rx.recv_timeout(Duration::from_secs(60));
                    tx.rollback().unwrap();
                });
                locked_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("lock taken");
                WriteBlocker::Postgres(release_tx, holder)
            }
            DatabaseUrl::SqliteMemory => unreachable!(),
        }
    }

    fn release(self) {
        match self {
            WriteBlocker::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            WriteBlocker::Postgres(release, holder) => {
                release.send(()).unwrap();
                holder.join().expect("lock holder");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. The SQLite writer outlives a panic in one batch
// ---------------------------------------------------------------------------------------

#[test]
fn sqlite_a_panic_in_one_batch_fails_that_batch_and_the_writer_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hooklatch.db"), &StoreOptions::default())
        .expect("open");
    hooklatch::store::Operations::migrate(&store).expect("migrate");
    let first = new_event("before");
    assert!(matches!(
        store.process(&first).unwrap(),
        Outcome::Processed(_)
    ));

    // Any code the writer runs may panic; this job stands for it.
    let failed = store.with_writer(|_| -> Result<(), StoreError> { panic!("injected") });
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "the panicking job's caller gets a 503-class error: {failed:?}"
    );

    // The writer is still there: new events are recorded, duplicates counted, ready.
    let after = new_event("after");
    assert!(
        matches!(store.process(&after), Ok(Outcome::Processed(_))),
        "a new event after the panic"
    );
    assert!(matches!(
        store.process(&first).unwrap(),
        Outcome::Duplicate(_)
    ));
    let stored = store
        .event(&first.source, &first.event_id)
        .unwrap()
        .unwrap();
    assert_eq!(stored.delivery_count, 2);
    store.ping().expect("ready after the panic");
}

// ---------------------------------------------------------------------------------------
// 5. SIGTERM commits pending counts even while an abandoned task holds the store
// ---------------------------------------------------------------------------------------

#[test]
fn sqlite_sigterm_commits_pending_counts_while_a_blocked_task_still_holds_the_store() {
    sigterm_commits_pending_counts(Backend::Sqlite);
}

#[test]
fn postgres_sigterm_commits_pending_counts_while_a_blocked_task_still_holds_the_store() {
    sigterm_commits_pending_counts(Backend::Postgres);
}

/// Another client blocks every write. A duplicate of `first` is counted, and the commit
/// of its count waits on the lock. An admin read of `second` (reads commit pending counts
/// first) waits behind that commit, and a duplicate of `second` is counted meanwhile:
/// its count is in this process's memory only, not yet in any statement. The read holds
/// the store past a 1 s grace, so the runtime abandons it and the store is never
/// dropped: before the fix the process exited with that count uncommitted (on SQLite
/// both). Now the binary closes the store itself and says so; the lock is released once
/// it does, and a direct reader must find every count.
fn sigterm_commits_pending_counts(backend: Backend) {
    use common::binary::{Server, Target, post, server_args};
    use std::io::Write;
    let Some(target) = Target::new(backend, "close_on_term") else {
        return;
    };
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    command
        .args(server_args(
            &target.url,
            &["--shutdown-grace", "1", "--store-timeout", "60"],
        ))
        .env("HOOKLATCH_ADMIN_TOKEN", common::ADMIN_TOKEN);
    let mut server = Server::spawn(command);
    let deliver = |id: &str, status: u16| {
        let answer = post(
            server.addr,
            "/webhooks/shop",
            &[],
            &format!(r#"{{"id":"{id}"}}"#),
        )
        .unwrap();
        assert_eq!(answer.status, status, "{id}: {}", answer.body);
    };
    deliver("first", 200);
    deliver("second", 200);

    let blocker = WriteBlocker::hold(&target.database_url());
    deliver("first", 202);
    if let DatabaseUrl::Postgres(url) = &target.database_url() {
        // The commit of the first count is under way, and stuck on the lock.
        assert!(common::some_session_waits_for_a_lock(url, PATIENCE));
    }
    // Waits behind that commit, so it holds the store past the grace. Its answer is
    // never read: the process ends first.
    let mut read = std::net::TcpStream::connect(server.addr).unwrap();
    write!(
        read,
        "GET /admin/api/events/shop/second HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        common::ADMIN_TOKEN
    )
    .unwrap();
    deliver("second", 202);

    server.signal("TERM");
    let closing_or_gone = common::binary::wait_until(PATIENCE, || {
        server.log().contains("closing the store") || server.exit_status().is_some()
    });
    assert!(closing_or_gone, "{}", server.log());
    blocker.release();
    let status = server.wait_exit(PATIENCE);
    assert!(status.success(), "{status:?}: {}", server.log());
    drop(read);
    for id in ["first", "second"] {
        assert_eq!(
            direct_delivery_count(&target.database_url(), id),
            2,
            "{id}: the duplicate's count was lost at shutdown: {}",
            server.log()
        );
    }
    assert!(server.log().contains("store closed"), "{}", server.log());
}
