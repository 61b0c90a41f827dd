//! What only the PostgreSQL backend promises: one round trip per webhook, many instances
//! on one database, concurrent migrations, a clean failure when the server is missing,
//! and reconnecting by itself when it comes back. The shared behaviour is in the
//! contract suite.
//!
//! Each test gets its own database from `common::TestDb` (dropped afterwards) and says
//! SKIPPED when no server answers (a failure with `CI=true`).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Backend, TestDb};
use hooklatch::model::{Amount, EventId, NewConversion, NewEvent, Outcome, Source};
use hooklatch::store::{
    AdminReads, Operations, PostgresStore, Receiving, Store, StoreError, StoreOptions,
};

fn fresh(test: &str) -> Option<TestDb> {
    TestDb::fresh(Backend::Postgres, test)
}

fn url(db: &TestDb) -> String {
    match &db.url {
        hooklatch::config::DatabaseUrl::Postgres(url) => url.clone(),
        other => panic!("not a PostgreSQL database: {other:?}"),
    }
}

fn options(pool_size: u32) -> StoreOptions {
    StoreOptions {
        pool_size,
        // The totals' background fold is housekeeping, not a webhook's round trip: kept
        // out of the round-trip count.
        totals_fold_every: std::time::Duration::from_secs(3600),
        ..StoreOptions::default()
    }
}

/// A delivery as the HTTP layer hands it over; a sale when `order_id` is given.
fn event(id: &str, fingerprint: &str, order_id: Option<&str>) -> NewEvent {
    NewEvent {
        source: Source::parse("refersion").expect("source"),
        event_id: EventId::parse(id, "event_id").expect("event id"),
        event_type: Some(if order_id.is_some() { "sale" } else { "click" }.into()),
        payload: format!(r#"{{"event_id":"{id}","fp":"{fingerprint}"}}"#),
        fingerprint: fingerprint.into(),
        conversion: order_id.map(|order_id| {
            NewConversion::sale(
                order_id.into(),
                Amount::parse("15.00").expect("amount"),
                Amount::parse("75.00").expect("amount"),
                Some("USD".into()),
                Some("YOyqC7".into()),
            )
        }),
        forward: false,
    }
}

/// A Refersion conversion delivery of conversion `conversion` under `topic`, updated at
/// `updated` (RFC 3339, as the HTTP layer converts Refersion's timestamps).
fn conversion_event(topic: &str, conversion: &str, status: &str, updated: &str) -> NewEvent {
    let event_id = format!("{topic}:{conversion}");
    NewEvent {
        source: Source::parse("refersion").expect("source"),
        event_id: EventId::parse(&event_id, "id").expect("event id"),
        event_type: Some(topic.into()),
        payload: format!(r#"{{"id":"{conversion}","status":"{status}","updated":"{updated}"}}"#),
        fingerprint: format!("{status}-{updated}"),
        conversion: Some(NewConversion {
            external_conversion_id: Some(conversion.into()),
            status: Some(status.into()),
            source_updated_at: Some(updated.into()),
            affiliate_id: Some("123".into()),
            affiliate_code: Some("a3y7".into()),
            ..NewConversion::sale(
                "1001".into(),
                Amount::parse("5.90").expect("amount"),
                Amount::parse("59.00").expect("amount"),
                Some("USD".into()),
                None,
            )
        }),
        forward: false,
    }
}

/// A TCP proxy in front of PostgreSQL that counts round trips: each time the client
/// speaks after the server last spoke is one round trip, however the bytes are split
/// into reads. The server→client pump records "server spoke" before forwarding, and the
/// client can only send its next request after reading that answer, so the order is
/// causal, not a race.
struct RoundTripProxy {
    addr: SocketAddr,
    round_trips: Arc<AtomicUsize>,
}

impl RoundTripProxy {
    fn start(upstream: SocketAddr) -> RoundTripProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let round_trips = Arc::new(AtomicUsize::new(0));
        let counter = round_trips.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let server_spoke = Arc::new(AtomicBool::new(true));
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (spoke, count) = (server_spoke.clone(), counter.clone());
                std::thread::spawn(move || {
                    pump(client, server, |_| {
                        if spoke.swap(false, Ordering::SeqCst) {
                            count.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                });
                std::thread::spawn(move || {
                    pump(s2, c2, |_| server_spoke.store(true, Ordering::SeqCst))
                });
            }
        });
        RoundTripProxy { addr, round_trips }
    }

    fn take(&self) -> usize {
        self.round_trips.swap(0, Ordering::SeqCst)
    }
}

/// Copies `from` to `to`, calling `seen` before forwarding each chunk.
fn pump(mut from: TcpStream, mut to: TcpStream, seen: impl Fn(usize)) {
    let mut buf = [0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                seen(n);
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let start = url.find("://").map(|i| i + 3).expect("URL scheme");
    let end = url[start..]
        .find('/')
        .map(|i| start + i)
        .unwrap_or(url.len());
    let authority = &url[start..end];
    let userinfo = authority.rfind('@').map(|i| &authority[..=i]).unwrap_or("");
    format!("{}{userinfo}{addr}{}", &url[..start], &url[end..])
}

fn upstream(url: &str) -> SocketAddr {
    let config: postgres::Config = url.parse().expect("URL");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("the round-trip test needs a TCP host, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .expect("resolve")
        .next()
        .expect("an address")
}

#[test]
fn every_webhook_is_one_round_trip_new_duplicate_or_conflict() {
    one_round_trip_per_webhook("round_trips", true);
}

/// `pg_prepared_statements = false` (a transaction pooler): the call goes out unnamed,
/// Parse/Bind/Execute/Sync in one write, so still one round trip.
#[test]
fn unnamed_statements_are_still_one_round_trip_per_webhook() {
    one_round_trip_per_webhook("round_trips_unnamed", false);
}

fn one_round_trip_per_webhook(test: &str, prepared: bool) {
    let Some(db) = fresh(test) else {
        return;
    };
    let proxy = RoundTripProxy::start(upstream(&url(&db)));
    // One connection, so every call below goes through the one counted socket.
    let options = StoreOptions {
        pg_prepared_statements: prepared,
        ..options(1)
    };
    let store = PostgresStore::open(&via(&url(&db), proxy.addr), &options).expect("open via proxy");
    proxy.take(); // the connection's startup handshake
    // With prepared statements the first call on a connection prepares: once per
    // connection. Unnamed, every call is the same single write.
    store
        .process(&event("warm-up", "w", None))
        .expect("warm up");
    let warm_up = if prepared { 2 } else { 1 };
    assert_eq!(proxy.take(), warm_up, "the first call on the connection");

    let (at_8, at_9) = ("2026-01-06T08:00:00.000000Z", "2026-01-06T09:00:00.000000Z");
    let cases = [
        ("new sale", event("e1", "a", Some("O1")), "Processed", true),
        ("new non-sale", event("e2", "a", None), "Processed", false),
        (
            "duplicate",
            event("e1", "a", Some("O1")),
            "Duplicate",
            false,
        ),
        ("conflict", event("e1", "b", Some("O2")), "Conflict", false),
        (
            "conversion created",
            conversion_event("NEW_CONVERSION", "77", "PENDING", at_8),
            "Processed",
            true,
        ),
        (
            "conversion moved",
            conversion_event("APPROVED_CONVERSION", "77", "APPROVED", at_9),
            "Processed",
            true,
        ),
        (
            "stale delivery",
            conversion_event("LATE_PENDING", "77", "PENDING", at_8),
            "Processed",
            false,
        ),
        (
            "conversion duplicate",
            conversion_event("NEW_CONVERSION", "77", "PENDING", at_8),
            "Duplicate",
            false,
        ),
    ];
    for (case, event, expected, applied) in cases {
        let outcome = store.process(&event).expect(case);
        assert!(
            format!("{outcome:?}").starts_with(expected),
            "{case}: {outcome:?}"
        );
        assert_eq!(outcome.receipt().applied, applied, "{case}: {outcome:?}");
        if event
            .conversion
            .as_ref()
            .is_some_and(|c| c.status.is_some())
        {
            assert_eq!(
                outcome.receipt().conversion_status.as_deref(),
                Some(if case == "conversion created" {
                    "PENDING"
                } else {
                    "APPROVED"
                }),
                "{case}"
            );
        }
        assert_eq!(proxy.take(), 1, "{case}: round trips for one process()");
        if expected == "Duplicate" {
            // Its count is committed 20 ms later by the counts thread, which on a loaded
            // machine lands inside the next case's window. A read commits it now, and
            // the round trips it takes are not the next case's.
            store
                .event(&event.source, &event.event_id)
                .expect("read back");
            proxy.take();
        }
    }
    drop(store);
}

#[test]
fn two_instances_record_one_of_128_concurrent_deliveries() {
    let Some(db) = fresh("multi_instance") else {
        return;
    };
    let second = db.reopen();
    let config = db.config();
    let apps = [db.app(), Arc::new(hooklatch::App::new(second, &config))];
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let statuses = runtime.block_on(async {
        let mut addrs = Vec::new();
        let mut stops = Vec::new();
        let mut servers = Vec::new();
        for app in &apps {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            addrs.push(listener.local_addr().expect("address"));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            stops.push(stop);
            servers.push(tokio::spawn(hooklatch::serve(
                app.clone(),
                listener,
                async move {
                    let _ = stopped.await;
                },
                Duration::from_secs(5),
            )));
        }
        let body = common::sale("multi_instance_1", "15.00");
        let start = Arc::new(tokio::sync::Barrier::new(128));
        let deliveries: Vec<_> = (0..128)
            .map(|i| {
                let (addr, body, start) = (addrs[i % 2], body.clone(), start.clone());
                tokio::spawn(async move {
                    start.wait().await;
                    post_status(addr, "/webhooks/refersion", &body).await
                })
            })
            .collect();
        let mut statuses = Vec::new();
        for delivery in deliveries {
            statuses.push(delivery.await.expect("delivery task"));
        }
        for stop in stops {
            let _ = stop.send(());
        }
        for server in servers {
            server.await.expect("server");
        }
        statuses
    });
    drop(runtime);

    let ok = statuses.iter().filter(|s| **s == 200).count();
    let accepted = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!((ok, accepted), (1, 127), "statuses: {statuses:?}");
    let totals = db.totals();
    assert_eq!(
        (totals.events, totals.conversions, totals.conflicts),
        (1, 1, 0)
    );
    // Each instance counts its duplicates in batches and commits what it holds when it
    // closes; another instance sees them within the flush delay, this one at once.
    drop(apps);
    let source = Source::parse("refersion").expect("source");
    let id = EventId::parse("multi_instance_1", "event_id").expect("id");
    let stored = db
        .store
        .event(&source, &id)
        .expect("read")
        .expect("the event");
    assert_eq!(stored.delivery_count, 128);
}

#[test]
fn two_instances_racing_updates_of_one_conversion_lose_none() {
    let Some(db) = fresh("lifecycle_race") else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [
        Arc::new(PostgresStore::open(&url(&db), &options(8)).expect("instance a")),
        Arc::new(PostgresStore::open(&url(&db), &options(8)).expect("instance b")),
    ];
    // 32 topics of one conversion, alternating instances, in no particular order of
    // time: the one with the newest timestamp must be what stays, whatever the order.
    let deliveries = 32;
    let start = Arc::new(Barrier::new(deliveries));
    let threads: Vec<_> = (0..deliveries)
        .map(|i| {
            let (store, start) = (stores[i % 2].clone(), start.clone());
            // A permutation of 0..32, so late deliveries race early ones.
            let minute = (i * 7) % deliveries;
            let status = if minute == deliveries - 1 {
                "DENIED"
            } else if minute % 2 == 0 {
                "PENDING"
            } else {
                "APPROVED"
            };
            let event = conversion_event(
                &format!("TOPIC_{i}"),
                "4242",
                status,
                &format!("2026-01-06T08:{minute:02}:00.000000Z"),
            );
            std::thread::spawn(move || {
                start.wait();
                store.process(&event)
            })
        })
        .collect();
    let mut conversion_ids = std::collections::HashSet::new();
    for thread in threads {
        let outcome = thread.join().expect("delivery thread").expect("process");
        let Outcome::Processed(receipt) = outcome else {
            panic!("every topic is a new event: {outcome:?}")
        };
        conversion_ids.insert(receipt.conversion_id.expect("linked"));
    }
    assert_eq!(
        conversion_ids.len(),
        1,
        "one conversion: {conversion_ids:?}"
    );
    let source = Source::parse("refersion").expect("source");
    let conversion = db
        .conversion(&source, &EventId::parse("TOPIC_0:4242", "id").expect("id"))
        .expect("the conversion");
    assert_eq!(
        conversion.status.as_deref(),
        Some("DENIED"),
        "the newest wins"
    );
    assert_eq!(
        conversion.source_updated_at.as_deref(),
        Some("2026-01-06T08:31:00.000000Z")
    );
    let totals = db.totals();
    assert_eq!((totals.events, totals.conversions), (deliveries as i64, 1));
    for store in stores {
        drop(store);
    }
}

/// One HTTP/1.1 POST on its own connection; returns the status code.
async fn post_status(addr: SocketAddr, path: &str, body: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("receive");
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

#[test]
fn four_instances_migrating_at_once_apply_each_migration_once() {
    let Some(db) = fresh("concurrent_migrations") else {
        return;
    };
    let url = url(&db);
    // Back to an empty database: the harness already migrated this one.
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).expect("admin");
    admin
        .batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .expect("empty the database");

    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (url, start) = (url.clone(), start.clone());
            std::thread::spawn(move || {
                // Every thread reaches the barrier, opened or not: one failed open must
                // fail the test, not leave the other three waiting for ever.
                let opened = PostgresStore::open(&url, &options(1));
                start.wait();
                opened?.migrate()
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("migration thread").expect("migrate");
    }

    let applied: Vec<i32> = admin
        .query(
            "SELECT version FROM refinery_schema_history ORDER BY version",
            &[],
        )
        .expect("history")
        .iter()
        .map(|row| row.get(0))
        .collect();
    // One history row per migration compiled in, each applied once.
    // (Numbers are reserved per lane, so the list may have gaps until every lane lands.)
    let expected: Vec<i32> = hooklatch::store::migration_names()
        .iter()
        .map(|name| name[..3].parse().expect("NNN_name"))
        .collect();
    assert_eq!(applied, expected);
    let functions: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_proc WHERE proname = 'process_webhook_idempotently'",
            &[],
        )
        .expect("functions")
        .get(0);
    assert_eq!(functions, 1);
    drop(admin);
    // The migrated schema works.
    let outcome = db
        .store
        .process(&event("after", "a", Some("O1")))
        .expect("process");
    assert!(matches!(outcome, Outcome::Processed(_)), "{outcome:?}");
}

#[test]
fn migrating_replaces_the_older_shape_of_the_function() {
    let Some(db) = fresh("function_upgrade") else {
        return;
    };
    let mut admin = postgres::Client::connect(&url(&db), postgres::NoTls).expect("admin");
    // The function as the previous release installed it: ten parameters, three results.
    admin
        .batch_execute(
            "CREATE FUNCTION process_webhook_idempotently(
                 text, text, text, text, text, text, numeric, numeric, text, text,
                 OUT outcome text, OUT webhook_event_id bigint, OUT conversion_id bigint)
             LANGUAGE sql AS $$ SELECT 'old'::text, 0::bigint, NULL::bigint $$",
        )
        .expect("install the old shape");
    // And the shape before forwarding: fifteen parameters, five results.
    admin
        .batch_execute(
            "CREATE FUNCTION process_webhook_idempotently(
                 text, text, text, text, text, text, numeric, numeric, text, text,
                 text, text, text, text, timestamptz,
                 OUT outcome text, OUT webhook_event_id bigint, OUT conversion_id bigint,
                 OUT conversion_status text, OUT applied boolean)
             LANGUAGE sql AS $$ SELECT 'old'::text, 0::bigint, NULL::bigint, NULL::text, NULL::boolean $$",
        )
        .expect("install the shape before forwarding");
    db.store.migrate().expect("migrate over the old shapes");
    db.store.migrate().expect("and again: nothing left to drop");
    let arities: Vec<i16> = admin
        .query(
            "SELECT pronargs FROM pg_proc WHERE proname = 'process_webhook_idempotently'",
            &[],
        )
        .expect("functions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(arities, vec![19], "only the current shape remains");
    drop(admin);
    let outcome = db
        .store
        .process(&event("after-upgrade", "a", Some("O1")))
        .expect("process");
    assert!(matches!(outcome, Outcome::Processed(_)), "{outcome:?}");
}

/// A port nothing listens on: bound, then released.
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
}

fn open_fails_within(url: &str, connect_timeout: Duration) -> StoreError {
    let options = StoreOptions {
        connect_timeout,
        ..StoreOptions::default()
    };
    let started = Instant::now();
    let err = match PostgresStore::open(url, &options) {
        Ok(_) => panic!("opened an unreachable server at {url}"),
        Err(err) => err,
    };
    let took = started.elapsed();
    assert!(
        took < connect_timeout + Duration::from_secs(2),
        "took {took:?}"
    );
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text:?}");
    err
}

#[test]
fn an_unreachable_server_fails_open_quickly_with_one_line() {
    // Nothing listening: refused at once, retried until the connect timeout.
    let refused = format!("postgres://postgres@{}/hooklatch", closed_port());
    let err = open_fails_within(&refused, Duration::from_secs(1));
    assert!(
        err.to_string().contains("cannot connect to PostgreSQL"),
        "{err}"
    );

    // Something listening that never answers the startup message.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!(
        "postgres://postgres@{}/hooklatch",
        silent.local_addr().expect("address")
    );
    open_fails_within(&silent_url, Duration::from_secs(1));
}

#[test]
fn the_pool_reconnects_after_the_server_ends_its_sessions() {
    let Some(db) = fresh("reconnect") else { return };
    let pool_size = 4;
    let url = format!("{}?application_name=hooklatch_reconnect_test", url(&db));
    let store = PostgresStore::open(&url, &options(pool_size)).expect("open");
    assert!(matches!(
        store.process(&event("r1", "a", None)),
        Ok(Outcome::Processed(_))
    ));

    let mut admin =
        postgres::Client::connect(&common::postgres_admin_url(), postgres::NoTls).expect("admin");
    let database = db_name(&db);
    let sessions = |admin: &mut postgres::Client| -> i64 {
        admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'hooklatch_reconnect_test'",
                &[&database],
            )
            .expect("count sessions")
            .get(0)
    };
    let wait_for = |admin: &mut postgres::Client, want: i64, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let open = sessions(admin);
            if open == want {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {open} sessions");
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // The pool fills in the background; end every connection once all are up, so each
    // one the store holds is dead.
    wait_for(&mut admin, i64::from(pool_size), "the pool never filled");
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&database],
        )
        .expect("terminate");
    // pg_terminate_backend only signals: wait until the server shows the sessions gone.
    wait_for(&mut admin, 0, "sessions outlived pg_terminate_backend");

    // The first call meets a dead connection and says so; it also makes the other idle
    // connections prove themselves before use, so the next call succeeds on a new one.
    let first = store.process(&event("r2", "a", None));
    assert!(
        matches!(first, Err(StoreError::Unavailable(_))),
        "the first call after the sessions ended: {first:?}"
    );
    let second = store.process(&event("r2", "a", None));
    assert!(matches!(second, Ok(Outcome::Processed(_))), "{second:?}");
    assert!(store.ping().is_ok());
    drop(store);
}

fn db_name(db: &TestDb) -> String {
    url(db)
        .rsplit('/')
        .next()
        .expect("database name")
        .to_owned()
}

#[test]
fn calls_made_on_runtime_threads_do_not_panic() {
    let Some(db) = fresh("runtime_threads") else {
        return;
    };
    // The sync client panics when it blocks on a runtime thread; the store steps off it.
    let current = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = db.store.clone();
    current.block_on(async {
        assert!(matches!(
            store.process(&event("rt1", "a", None)),
            Ok(Outcome::Processed(_))
        ));
        store.ping().expect("ping");
    });
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("runtime");
    let on_worker = multi.block_on(async move {
        store.ping().expect("ping in block_on");
        tokio::spawn(async move { store.process(&event("rt1", "a", None)) })
            .await
            .expect("task")
    });
    assert!(
        matches!(on_worker, Ok(Outcome::Duplicate(_))),
        "{on_worker:?}"
    );
    // The last handle to a store may also go away on a worker.
    let second = db.reopen();
    multi.block_on(async move {
        tokio::spawn(async move { drop(second) })
            .await
            .expect("drop on a worker");
    });
}
