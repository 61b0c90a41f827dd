//! Moving between stores without losing anything (SPEC §5.2, issue 18): faithful
//! `export`/`import`, and `hooklatch copy`, in both directions.

mod common;

use std::sync::Arc;

use common::{Backend, TestDb, conversion_body, post, sale};
use hooklatch::App;
use hooklatch::cli;
use hooklatch::config::DatabaseUrl;
use hooklatch::model::{EventId, Source};
use hooklatch::read::ConversionFilter;
use hooklatch::store::transfer::{Table, row_key};
use hooklatch::store::{Transfer, open_transfer};
use warp::http::StatusCode;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A body with odd key order, spacing and number text: none of it may change on the way.
const ODD_BODY: &str = "{\"z\":1, \"type\":\"t\",\"id\":\"odd\",\n  \"a\":{\"y\":1.50,\"x\":1e2,\"big\":12345678901234567890.000},\"m\":-0.0}";

/// Source, headers and body of one delivery.
type Delivery = (&'static str, Vec<(&'static str, &'static str)>, String);

/// Sales with repeats, a conflict, a Refersion lifecycle and an odd body.
async fn record_history(app: &Arc<App>) {
    let deliveries: Vec<Delivery> = vec![
        ("refersion", vec![], sale("s1", "0.10")),
        ("refersion", vec![], sale("s1", "0.10")),
        ("refersion", vec![], sale("s1", "0.10")),
        ("refersion", vec![], sale("s2", "2.50")),
        ("refersion", vec![], sale("s2", "9.99")),
        ("acme", vec![], ODD_BODY.to_owned()),
        (
            "refersion",
            vec![("Refersion-Topic", "NEW_CONVERSION")],
            conversion_body(777, "PENDING", "59.00", Some("2026-01-06 08:00:00")),
        ),
        (
            "refersion",
            vec![("Refersion-Topic", "APPROVED_CONVERSION")],
            conversion_body(777, "APPROVED", "59.00", Some("2026-01-07 08:00:00")),
        ),
    ];
    for (source, headers, body) in &deliveries {
        let reply = post(app, &format!("/webhooks/{source}"), headers, body).await;
        assert!(reply.status.is_success(), "{source} {body}: {reply:?}");
    }
}

fn export(db: &TestDb) -> String {
    let mut out = Vec::new();
    cli::export::run(db.store.as_ref(), &Default::default(), &mut out).expect("export");
    String::from_utf8(out).unwrap()
}

fn transfer(db: &TestDb) -> Arc<dyn Transfer> {
    open_transfer(&db.url, &Default::default()).expect("open for transfer")
}

fn import(db: &TestDb, lines: &str) -> cli::import::ImportCounts {
    import_with(db, lines, &Default::default())
}

fn import_with(
    db: &TestDb,
    lines: &str,
    options: &hooklatch::store::StoreOptions,
) -> cli::import::ImportCounts {
    let store = open_transfer(&db.url, options).expect("open for transfer");
    import_into(store.as_ref(), db, lines)
}

/// Imports `lines` through an open `store` of `db`, expecting every line to be valid.
fn import_into(store: &dyn Transfer, db: &TestDb, lines: &str) -> cli::import::ImportCounts {
    let mut errors = Vec::new();
    let counts = cli::import::run(store, &db.config().sources, lines.as_bytes(), &mut errors)
        .map_err(|(_, e)| e.to_string())
        .expect("import");
    assert!(errors.is_empty(), "{}", String::from_utf8_lossy(&errors));
    counts
}

/// `(conversion fields, created_at, updated_at)` of every conversion, by id order.
fn conversions(db: &TestDb) -> Vec<serde_json::Value> {
    let mut all: Vec<_> = db
        .store
        .list_conversions(&ConversionFilter::default(), None, 500)
        .unwrap()
        .into_iter()
        .map(|c| serde_json::to_value(&c).unwrap())
        .map(|mut c| {
            c.as_object_mut().unwrap().remove("conversion_id");
            c
        })
        .collect();
    all.sort_by_key(|c| c.to_string());
    all
}

fn pairs() -> Vec<(Backend, Backend)> {
    vec![
        (Backend::Sqlite, Backend::Sqlite),
        (Backend::Sqlite, Backend::Postgres),
        (Backend::Postgres, Backend::Sqlite),
    ]
}

/// SPEC §5.2: `import` keeps each line's timestamps and counts, a conversion it creates
/// gets created_at = first_seen_at, the body keeps its key order and number text, and a
/// second import changes nothing.
#[test]
fn import_keeps_timestamps_counts_bodies_and_conversion_dates_and_twice_changes_nothing() {
    for (from, to) in pairs() {
        let name = "import_fidelity";
        let (Some(origin), Some(target)) = (TestDb::fresh(from, name), TestDb::fresh(to, name))
        else {
            continue;
        };
        runtime().block_on(record_history(&origin.app()));
        let exported = export(&origin);
        assert!(
            exported.contains(&ODD_BODY.replace('\n', "")),
            "export keeps the stored text: {exported}"
        );
        let counts = import(&target, &exported);
        assert_eq!(
            counts.to_string(),
            "5 processed, 0 duplicate, 0 conflict, 0 invalid"
        );
        assert_eq!(export(&target), exported, "{from:?} -> {to:?}");
        assert_eq!(
            conversions(&target),
            conversions(&origin),
            "{from:?} -> {to:?}"
        );
        let s1 = exported.lines().next().unwrap();
        let s1: serde_json::Value = serde_json::from_str(s1).unwrap();
        assert_eq!(s1["delivery_count"], 3);
        let created: Vec<String> = conversions(&target)
            .iter()
            .filter(|c| c["event_id"] == "s1")
            .map(|c| c["created_at"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(created, [s1["first_seen_at"].as_str().unwrap()]);

        let again = import(&target, &exported);
        assert_eq!(
            again.to_string(),
            "0 processed, 5 duplicate, 0 conflict, 0 invalid"
        );
        assert_eq!(export(&target), exported, "a second import changes nothing");

        // The moved store answers a provider's retry as a duplicate, with the same count
        // rule as before the move.
        let retry = runtime().block_on(post(
            &target.app(),
            "/webhooks/refersion",
            &[],
            &sale("s2", "2.50"),
        ));
        assert_eq!(retry.status, StatusCode::ACCEPTED, "{retry:?}");
    }
}

/// One exported line, by hand.
fn line(source: &str, event_id: &str, payload: &str, seen: &str) -> String {
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
    serde_json::json!({
        "source": source,
        "event_id": event_id,
        "payload": payload,
        "first_seen_at": seen,
        "last_seen_at": seen,
        "delivery_count": 1,
    })
    .to_string()
}

/// PostgreSQL imports over two connections at once; SQLite over its one writer, strictly
/// in file order. The same file must leave both stores the same: every delivery of one
/// conversion applied in file order (created by the first, a stale one not applied), and
/// an event id the file repeats with another conversion recorded as its first line, the
/// repeat a conflict, whichever lanes the two lines fall in, and whether the first is
/// still on its way (10 lines apart) or long written (900 lines apart).
#[test]
fn import_over_several_lanes_keeps_file_order_for_each_event_and_conversion() {
    let name = "import_lanes";
    let (Some(sqlite), Some(postgres)) = (
        TestDb::fresh(Backend::Sqlite, name),
        TestDb::fresh(Backend::Postgres, name),
    ) else {
        return;
    };
    let second = |n: usize| format!("2026-02-01T00:{:02}:{:02}.000000Z", n / 60 % 60, n % 60);
    let mut lines = Vec::new();
    for n in 0..1600 {
        let text = match n % 100 {
            // Four conversions, each created PENDING, approved, then a stale PENDING with
            // the approval's timestamp (not applied), spread over the file.
            3 | 4 => {
                let conversion = 7000 + (n % 100) as u64 + 10 * (n / 100 % 2) as u64;
                let (status, updated) = match n / 100 {
                    0..=3 => ("PENDING", "2026-01-06 08:00:00"),
                    4..=9 => ("APPROVED", "2026-01-07 08:00:00"),
                    _ => ("PENDING", "2026-01-07 08:00:00"),
                };
                let body = conversion_body(conversion, status, "59.00", Some(updated));
                line(
                    "refersion",
                    &format!("NEW_CONVERSION:{n}"),
                    &body,
                    &second(n),
                )
            }
            // An event id repeated 900 lines later with another conversion.
            10..=17 => {
                let k = n % 100 - 10 + 8 * (n / 100 % 9);
                let conversion = 9000 + k as u64 + 100 * (n / 900) as u64;
                let body = conversion_body(conversion, "PENDING", "10.00", None);
                line(
                    "refersion",
                    &format!("NEW_CONVERSION:repeated-{k}"),
                    &body,
                    &second(n),
                )
            }
            // An event id repeated 10 lines later with another conversion: the first
            // line is still on its way when the repeat is read.
            21..=28 | 31..=38 => {
                let k = n % 10 + 10 * (n / 100);
                let conversion = 9500 + 1000 * (n % 100 / 30) as u64 + k as u64;
                let body = conversion_body(conversion, "PENDING", "10.00", None);
                line(
                    "refersion",
                    &format!("NEW_CONVERSION:near-{k}"),
                    &body,
                    &second(n),
                )
            }
            _ if n % 10 == 0 => {
                let id = format!("sale-{n}");
                line("refersion", &id, &sale(&id, "1.00"), &second(n))
            }
            // Events without a conversion (fewer conversions than one page of them).
            _ => {
                let body = format!(r#"{{"id":"event-{n}","type":"t"}}"#);
                line("acme", &format!("event-{n}"), &body, &second(n))
            }
        };
        lines.push(text);
    }
    let file = lines.join("\n");
    let counts = import(&sqlite, &file);
    assert_eq!(import(&postgres, &file), counts);
    assert!(counts.conflict > 0, "{counts}");
    // A conflict's last_seen_at is the moment it was imported; everything else is the file's.
    let stable = |db: &TestDb| -> Vec<serde_json::Value> {
        export(db)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .map(|mut l: serde_json::Value| {
                if l["delivery_count"] != 1 {
                    l.as_object_mut().unwrap().remove("last_seen_at");
                }
                l
            })
            .collect()
    };
    assert_eq!(stable(&postgres), stable(&sqlite));
    assert_eq!(conversions(&postgres), conversions(&sqlite));
    let approved = conversions(&postgres)
        .iter()
        .filter(|c| c["status"] == "APPROVED")
        .count();
    assert_eq!(approved, 4, "every conversion approved, none moved back");
    assert_eq!(import(&postgres, &file).duplicate, counts.processed);

    // One connection: one lane, not two waiting on each other for it.
    let Some(single) = TestDb::fresh(Backend::Postgres, name) else {
        return;
    };
    let options = hooklatch::store::StoreOptions {
        pool_size: 1,
        connect_timeout: std::time::Duration::from_millis(200),
        ..Default::default()
    };
    assert_eq!(import_with(&single, &file, &options), counts);
    assert_eq!(stable(&single), stable(&sqlite));
}

/// A batch the store refuses stops the import with a message that names its first line;
/// every line before that one is recorded (over two lanes too), and importing the file
/// again once the store accepts it records the rest, the recorded lines as duplicates.
#[test]
fn a_refused_batch_stops_the_import_and_every_line_before_it_is_recorded() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let Some(db) = TestDb::fresh(backend, "import_refused") else {
            continue;
        };
        let lines: Vec<String> = (0..2000)
            .map(|n| {
                let id = if n == 1234 {
                    "poison".to_owned()
                } else {
                    format!("line-{n}")
                };
                let seen = format!("2026-03-01T00:{:02}:{:02}.000000Z", n / 60 % 60, n % 60);
                line("refersion", &id, &sale(&id, "1.00"), &seen)
            })
            .collect();
        let file = lines.join("\n");
        let (refuse, accept) = match backend {
            Backend::Sqlite => (
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_events \
                 WHEN NEW.external_event_id = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
                "DROP TRIGGER poison;",
            ),
            Backend::Postgres => (
                "ALTER TABLE webhook_events ADD CONSTRAINT poison CHECK (external_event_id <> 'poison');",
                "ALTER TABLE webhook_events DROP CONSTRAINT poison;",
            ),
        };
        common::execute_sql(&db.url, refuse);

        let store = transfer(&db);
        let mut errors = Vec::new();
        let (counts, error) = cli::import::run(
            store.as_ref(),
            &db.config().sources,
            file.as_bytes(),
            &mut errors,
        )
        .expect_err("the poisoned batch stops the import");
        let message = error.to_string();
        let first: usize = message
            .strip_prefix("a batch of lines ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{backend:?}: {message}"));
        assert!(
            first <= 1235,
            "{backend:?}: the batch holds line 1235: {message}"
        );
        let refersion = Source::parse("refersion").unwrap();
        for n in 0..first - 1 {
            let id = EventId::parse(&format!("line-{n}"), "id").unwrap();
            assert!(
                db.store.event(&refersion, &id).unwrap().is_some(),
                "{backend:?}: line {} is before the failed batch: {message}",
                n + 1
            );
        }
        let recorded = db.totals().events;
        assert_eq!(recorded as u64, counts.processed, "{backend:?}");
        assert!(recorded < 2000, "{backend:?}");

        common::execute_sql(&db.url, accept);
        let again = import(&db, &file);
        assert_eq!(again.duplicate, counts.processed, "{backend:?}");
        assert_eq!(again.processed + again.duplicate, 2000, "{backend:?}");
        assert_eq!(db.totals().events, 2000, "{backend:?}");
    }
}

/// `import` and `copy` open at most `TRANSFER_CONNECTIONS`, whatever the server's pool is
/// configured to: every pooled connection is opened up front.
#[test]
fn a_transfer_opens_only_the_connections_it_can_use() {
    let Some(db) = TestDb::fresh(Backend::Postgres, "transfer_pool") else {
        return;
    };
    let DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let count = || {
        common::pg_count(
            url,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
    };
    let before = count();
    let options = hooklatch::store::StoreOptions {
        pool_size: 16,
        ..Default::default()
    };
    let store = open_transfer(&db.url, &options).expect("open for transfer");
    // The pool fills in behind its first connection; an import gives it the time (a
    // pool of 16 would have opened all of them by the end).
    let lines: Vec<String> = (0..2000)
        .map(|n| {
            let id = format!("pool-{n}");
            line(
                "refersion",
                &id,
                &sale(&id, "1.00"),
                "2026-03-01T00:00:00.000000Z",
            )
        })
        .collect();
    let counts = import_into(store.as_ref(), &db, &lines.join("\n"));
    assert_eq!(counts.processed, 2000);
    let opened = count() - before;
    let cap = i64::from(hooklatch::store::transfer::TRANSFER_CONNECTIONS);
    assert!((2..=cap).contains(&opened), "{opened} connections open");
    drop(store);
}

/// Forwards in every state, with their attempt history, and two sources' forwarding
/// state (one paused by its failure streak, one failing), written straight into the
/// store (the same SQL on both backends).
fn add_forwards(db: &TestDb) {
    common::execute_sql(
        &db.url,
        "INSERT INTO forward_sources (source, consecutive_failures, paused_at, last_error) \
         VALUES ('shopify', 50, '2026-01-04T05:06:07.000001Z', 'HTTP 500'), \
                ('github', 3, NULL, 'connection refused')",
    );
    for (event, state, delivered) in [
        ("s1", "delivered", "'2026-01-02T00:00:00.000001Z'"),
        ("s2", "failed", "NULL"),
        ("odd", "pending", "NULL"),
    ] {
        common::execute_sql(
            &db.url,
            &format!(
                "INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, \
                 next_attempt_at, last_status, last_error, delivered_at, created_at) \
                 SELECT id, source, '{state}', 2, '2026-01-03T04:05:06.123456Z', 500, 'boom', \
                 {delivered}, '2026-01-01T00:00:00.000000Z' \
                 FROM webhook_events WHERE external_event_id = '{event}'"
            ),
        );
        common::execute_sql(
            &db.url,
            &format!(
                "INSERT INTO forward_attempts (webhook_event_id, at, status, duration_ms, error, response) \
                 SELECT id, '2026-01-02T00:00:00.000000Z', 500, 12, 'boom', 'no' \
                 FROM webhook_events WHERE external_event_id = '{event}'"
            ),
        );
    }
}

/// Every row of every table, as the copy reads it.
fn all_rows(db: &TestDb) -> Vec<Vec<hooklatch::store::transfer::CopyRow>> {
    let store = transfer(db);
    Table::ALL
        .iter()
        .map(|table| {
            store
                .read_rows(*table, i64::MIN, i64::MAX, 100_000)
                .unwrap()
        })
        .collect()
}

fn copy(from: &TestDb, to: &TestDb) -> cli::copy::CopyReport {
    cli::copy::copy(
        transfer(from).as_ref(),
        transfer(to).as_ref(),
        &mut cli::copy::Progress::quiet(),
    )
    .expect("copy")
}

fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
        DatabaseUrl::SqliteMemory => unreachable!("a file store"),
    }
}

/// Issue 18: a rich store is copied and compared row by row, ids kept; retries get the
/// same ids and a new event a larger one; a pending forward keeps its id (so its
/// `webhook-id`); a second copy changes nothing; a divergent row makes the exit code 1.
#[test]
fn copy_moves_every_row_with_its_id_and_a_second_copy_changes_nothing() {
    for (from, to) in pairs() {
        let name = "copy_rows";
        let (Some(origin), Some(target)) = (TestDb::fresh(from, name), TestDb::fresh(to, name))
        else {
            continue;
        };
        runtime().block_on(record_history(&origin.app()));
        add_forwards(&origin);
        let rows = all_rows(&origin);
        let total: usize = rows.iter().map(Vec::len).sum();
        assert!(
            rows.iter().all(|t| !t.is_empty()),
            "every table has rows: {rows:?}"
        );

        let report = copy(&origin, &target);
        assert_eq!(
            report.to_string(),
            format!("{total} rows copied, 0 already present, 0 different")
        );
        assert_eq!(all_rows(&target), rows, "{from:?} -> {to:?}");
        assert_eq!(export(&target), export(&origin));
        // The totals were rebuilt on the target: exact, and the same as the origin's.
        let check = target.store.verify_totals().unwrap();
        assert!(
            check.drift.is_empty(),
            "{from:?} -> {to:?}: {:?}",
            check.drift
        );
        assert_eq!(
            target.store.source_stats().unwrap(),
            origin.store.source_stats().unwrap()
        );
        assert_eq!(
            target.store.conversion_summary().unwrap(),
            origin.store.conversion_summary().unwrap()
        );

        let again = copy(&origin, &target);
        assert_eq!(
            again.to_string(),
            format!("0 rows copied, {total} already present, 0 different")
        );
        assert_eq!(all_rows(&target), rows, "a second copy changes nothing");

        // A row that differs is reported, left alone, and fails the command.
        common::execute_sql(
            &target.url,
            "UPDATE webhook_events SET delivery_count = 99 WHERE external_event_id = 's2'",
        );
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hooklatch"))
            .args([
                "copy",
                "--from",
                &url_text(&origin.url),
                "--to",
                &url_text(&target.url),
            ])
            .env_remove("HOOKLATCH_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("webhook_events"), "{stderr}");
        assert!(
            stderr.contains("copy: 100%"),
            "progress, one line per 10 %: {stderr}"
        );
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(&format!(
                "0 rows copied, {} already present, 1 different",
                total - 1
            )),
            "{output:?}"
        );
        let s2 = origin
            .store
            .event(
                &Source::parse("refersion").unwrap(),
                &EventId::parse("s2", "id").unwrap(),
            )
            .unwrap()
            .unwrap();
        assert!(
            stderr.contains(&format!("webhook_events {}:", s2.id)),
            "{stderr}"
        );

        // A retry is answered with the ids it got before the move; a new event gets a
        // larger id than any copied one.
        let app = target.app();
        let retry = runtime().block_on(post(&app, "/webhooks/refersion", &[], &sale("s1", "0.10")));
        assert_eq!(retry.status, StatusCode::ACCEPTED, "{retry:?}");
        let s1 = origin
            .store
            .event(
                &Source::parse("refersion").unwrap(),
                &EventId::parse("s1", "id").unwrap(),
            )
            .unwrap()
            .unwrap();
        assert_eq!(retry.body["webhook_event_id"], s1.id);
        assert_eq!(retry.body["conversion_id"], s1.conversion_id.unwrap());
        let new = runtime().block_on(post(&app, "/webhooks/refersion", &[], &sale("s9", "1.00")));
        assert_eq!(new.status, StatusCode::OK, "{new:?}");
        let max_event = rows[1].iter().map(|r| row_key(r).unwrap()).max().unwrap();
        assert!(
            new.body["webhook_event_id"].as_i64().unwrap() > max_event,
            "{new:?}"
        );
        let max_conversion = rows[0].iter().map(|r| row_key(r).unwrap()).max().unwrap();
        assert!(
            new.body["conversion_id"].as_i64().unwrap() > max_conversion,
            "{new:?}"
        );

        // The pending forward is claimed on the target under its old id: the same
        // `webhook-id: hl_<id>` goes to the app.
        let odd = origin
            .store
            .event(
                &Source::parse("acme").unwrap(),
                &EventId::parse("odd", "id").unwrap(),
            )
            .unwrap()
            .unwrap();
        common::execute_sql(
            &target.url,
            "UPDATE forward_outbox SET next_attempt_at = '2000-01-01T00:00:00.000000Z'",
        );
        let jobs = target
            .store
            .claim_forwards("test", std::time::Duration::from_secs(60), 10)
            .unwrap();
        assert_eq!(
            jobs.iter().map(|j| j.webhook_event_id).collect::<Vec<_>>(),
            [odd.id]
        );
        assert_eq!(jobs[0].payload.as_deref(), Some(ODD_BODY));
    }
}

/// SQLite → PostgreSQL → SQLite gives the same `export` output, and the same rows.
#[test]
fn sqlite_to_postgres_to_sqlite_gives_identical_export() {
    let name = "copy_round_trip";
    let Some(middle) = TestDb::fresh(Backend::Postgres, name) else {
        return;
    };
    let origin = TestDb::fresh(Backend::Sqlite, name).unwrap();
    let last = TestDb::fresh(Backend::Sqlite, name).unwrap();
    runtime().block_on(record_history(&origin.app()));
    add_forwards(&origin);
    copy(&origin, &middle);
    copy(&middle, &last);
    assert_eq!(export(&last), export(&origin));
    assert_eq!(all_rows(&last), all_rows(&origin));
}

/// `count` exported lines of Refersion sales `{prefix}0`, `{prefix}1`, …, without
/// history (each is one delivery seen now).
fn sale_lines(prefix: &str, count: usize, commission: &str) -> String {
    (0..count)
        .map(|n| {
            let id = format!("{prefix}{n}");
            format!(
                "{{\"source\":\"refersion\",\"event_id\":\"{id}\",\"payload\":{}}}\n",
                sale(&id, commission)
            )
        })
        .collect()
}

/// Migration 011: the copy's rows skip PostgreSQL's totals triggers, and only its own
/// transactions do. An instance receiving on the target while a copy runs keeps every
/// event it records counted: after the copy (which rebuilds the totals) and after more
/// deliveries on the connections the copy used, the kept totals equal a recount.
/// Clears the flag when dropped, also while a panic unwinds.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn a_delivery_on_the_target_during_a_copy_keeps_exact_totals() {
    let name = "copy_live_target";
    let Some(target) = TestDb::fresh(Backend::Postgres, name) else {
        return;
    };
    let origin = TestDb::fresh(Backend::Sqlite, name).unwrap();
    assert_eq!(
        import(&origin, &sale_lines("o", 3000, "1.25")).processed,
        3000
    );
    // The target's own deliveries take ids far above the copied ones.
    common::execute_sql(
        &target.url,
        "SELECT setval(pg_get_serial_sequence('webhook_events', 'id'), 1000000), \
                setval(pg_get_serial_sequence('conversions', 'id'), 1000000)",
    );
    let app = target.app();
    let copying = std::sync::atomic::AtomicBool::new(true);
    let (report, live) = std::thread::scope(|scope| {
        let live = scope.spawn(|| {
            let runtime = runtime();
            let mut n = 0;
            // At least one delivery after the copy ended, whatever the timing.
            while copying.load(std::sync::atomic::Ordering::Relaxed) || n == 0 {
                let reply = runtime.block_on(post(
                    &app,
                    "/webhooks/refersion",
                    &[],
                    &sale(&format!("live{n}"), "2.00"),
                ));
                assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
                n += 1;
            }
            n
        });
        // Ends the deliveries however this closure ends: after a failed assertion the
        // scope would otherwise wait for them for ever.
        let stop = StopOnDrop(&copying);
        // Two connections: the copy's two writers use both, and the import below
        // then runs on them.
        let options = hooklatch::store::StoreOptions {
            pool_size: 2,
            ..Default::default()
        };
        let to = open_transfer(&target.url, &options).expect("open for transfer");
        let report = cli::copy::copy(
            transfer(&origin).as_ref(),
            to.as_ref(),
            &mut cli::copy::Progress::quiet(),
        )
        .expect("copy");
        // The connections that wrote the copy's batches record events, counted.
        let counts = import_into(to.as_ref(), &target, &sale_lines("after", 20, "3.00"));
        assert_eq!(counts.processed, 20);
        drop(stop);
        (report, live.join().unwrap())
    });
    assert_eq!(
        report.to_string(),
        "6000 rows copied, 0 already present, 0 different"
    );
    let check = target.store.verify_totals().unwrap();
    assert!(check.drift.is_empty(), "{:?}", check.drift);
    let stats = target.store.source_stats().unwrap();
    let events: i64 = stats.iter().map(|s| s.events).sum();
    assert_eq!(events, 3000 + live + 20, "{stats:?}");
}
