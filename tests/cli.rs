//! The commands of SPEC §5.2 through the real binary: `events list|show`, `export`,
//! `import` and `prune`, and moving a store from SQLite to PostgreSQL with
//! `hooklatch export | DATABASE_URL=postgres://… hooklatch import -`.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{Backend, TestDb, conversion_body, post, sale};
use hooklatch::App;
use hooklatch::config::DatabaseUrl;
use hooklatch::read::{ConversionFilter, ExportFilter};
use serde_json::Value;
use warp::http::StatusCode;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
        DatabaseUrl::SqliteMemory => panic!("another process cannot open an in-memory store"),
    }
}

fn hooklatch(db: &TestDb, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hooklatch"))
        .args(args)
        .env_remove("HOOKLATCH_CONFIG")
        .env("DATABASE_URL", url_text(&db.url))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run hooklatch");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("hooklatch output")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Source, headers and body of one delivery.
type Delivery = (&'static str, Vec<(&'static str, &'static str)>, String);

/// One delivery of every preset's shape, plus duplicates and a conflict.
async fn record_a_mixed_history(app: &Arc<App>) {
    let deliveries: Vec<Delivery> = vec![
        ("refersion", vec![], sale("r1", "0.10")),
        ("refersion", vec![], sale("r2", "0.20")),
        ("refersion", vec![], sale("r3", "0.30")),
        (
            "refersion",
            vec![("Refersion-Topic", "NEW_CONVERSION")],
            r#"{"id":987654321,"status":"pending","note":"no event_id in the body"}"#.into(),
        ),
        (
            "shopify",
            vec![
                ("X-Shopify-Event-Id", "shp-1"),
                ("X-Shopify-Topic", "orders/create"),
            ],
            r#"{"id":1,"total":"9.99"}"#.into(),
        ),
        (
            "github",
            vec![
                ("X-GitHub-Delivery", "gh-uuid-1"),
                ("X-GitHub-Event", "push"),
            ],
            r#"{"ref":"refs/heads/main"}"#.into(),
        ),
        (
            "stripe",
            vec![],
            r#"{"id":"evt_1","type":"charge.succeeded","pending_webhooks":1}"#.into(),
        ),
        (
            "acme",
            vec![("webhook-id", "msg_1")],
            r#"{"type":"order.paid","amount":15.00}"#.into(),
        ),
        (
            "acme",
            vec![],
            r#"{"id":"weird id/with:colon","type":"x"}"#.into(),
        ),
        // One Refersion conversion through its lifecycle: the import must replay the
        // topics in order to end APPROVED.
        (
            "refersion",
            vec![("Refersion-Topic", "NEW_CONVERSION")],
            conversion_body(555, "PENDING", "59.00", Some("2026-01-06 08:00:00")),
        ),
        (
            "refersion",
            vec![("Refersion-Topic", "APPROVED_CONVERSION")],
            conversion_body(555, "APPROVED", "59.00", Some("2026-01-07 08:00:00")),
        ),
    ];
    for (source, headers, body) in &deliveries {
        let reply = post(app, &format!("/webhooks/{source}"), headers, body).await;
        assert_eq!(reply.status, StatusCode::OK, "{source} {body}: {reply:?}");
    }
    let (source, headers, body) = &deliveries[4];
    let again = post(app, &format!("/webhooks/{source}"), headers, body).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let conflict = post(app, "/webhooks/refersion", &[], &sale("r1", "9.99")).await;
    assert_eq!(conflict.body["status"], "conflict");
}

/// Every exported field of every event, the stored body as text: an import keeps them all.
fn events_of(db: &TestDb) -> Vec<Vec<String>> {
    let mut all: Vec<_> = db
        .store
        .export_events(&ExportFilter::default(), None, 500)
        .unwrap()
        .into_iter()
        .map(|e| {
            vec![
                e.source,
                e.event_id,
                format!("{:?}", e.event_type),
                e.payload.get().to_owned(),
                e.first_seen_at,
                e.last_seen_at,
                e.delivery_count.to_string(),
            ]
        })
        .collect();
    all.sort();
    all
}

fn conversions_of(db: &TestDb) -> Vec<Value> {
    let mut all: Vec<Value> = db
        .store
        .list_conversions(&ConversionFilter::default(), None, 500)
        .unwrap()
        .into_iter()
        .map(|c| {
            serde_json::json!([
                c.source,
                c.event_id,
                c.external_conversion_id,
                c.order_id,
                c.sale_amount,
                c.commission_amount,
                c.currency,
                c.status,
                c.tracking_id
            ])
        })
        .collect();
    all.sort_by_key(|v| v.to_string());
    all
}

#[test]
fn export_from_sqlite_then_import_into_postgres_moves_events_and_conversions() {
    let Some(target) = TestDb::fresh(Backend::Postgres, "export_import_round_trip") else {
        return;
    };
    let origin = TestDb::fresh(Backend::Sqlite, "export_import_round_trip").unwrap();
    runtime().block_on(record_a_mixed_history(&origin.app()));

    let exported = stdout(&hooklatch(&origin, &["export"], None));
    let lines: Vec<Value> = exported
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(lines.len(), 11);
    let first = lines[0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "delivery_count",
            "event_id",
            "event_type",
            "first_seen_at",
            "last_seen_at",
            "payload",
            "source"
        ]
    );
    assert_eq!(first["event_id"], "r1", "oldest first");
    assert_eq!(first["delivery_count"], 2);

    let imported = hooklatch(&target, &["import", "-"], Some(&exported));
    assert_eq!(
        stdout(&imported).trim(),
        "11 processed, 0 duplicate, 0 conflict, 0 invalid"
    );
    assert_eq!(events_of(&target), events_of(&origin));
    assert_eq!(conversions_of(&target), conversions_of(&origin));
    let conversions = conversions_of(&target);
    assert_eq!(conversions.len(), 4);
    assert!(
        conversions
            .iter()
            .any(|c| c[2] == "555" && c[7] == "APPROVED"),
        "{conversions:?}"
    );

    let again = hooklatch(&target, &["import", "-"], Some(&exported));
    assert_eq!(
        stdout(&again).trim(),
        "0 processed, 11 duplicate, 0 conflict, 0 invalid"
    );
    assert_eq!(target.totals().events, 11);

    // The moved store answers a provider's retry as a duplicate.
    let app = target.app();
    let retry = runtime().block_on(async {
        post(
            &app,
            "/webhooks/shopify",
            &[
                ("X-Shopify-Event-Id", "shp-1"),
                ("X-Shopify-Topic", "orders/create"),
            ],
            r#"{"total":"9.99","id":1}"#,
        )
        .await
    });
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{retry:?}");
}

#[test]
fn import_counts_invalid_lines_and_conflicts_and_fails_on_an_unreadable_file() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        import_counts_on(backend);
    }
}

fn import_counts_on(backend: Backend) {
    let Some(db) = TestDb::fresh(backend, "import_counts") else {
        return;
    };
    let input = [
        r#"{"source":"acme","event_id":"1","event_type":"t","payload":{"id":"1","n":1}}"#,
        "",
        r#"{"source":"acme","event_id":"2","event_type":null,"payload":null}"#,
        r#"{"source":"Not A Source","event_id":"3","payload":{}}"#,
        r#"{"source":"refersion","event_id":"s","event_type":"sale","payload":{"event_type":"sale","event_id":"s"}}"#,
        r#"{"source":"acme","event_id":"1","event_type":"t","payload":{"id":"1","n":2}}"#,
        r#"{"source":"acme","event_id":"1","event_type":"t","payload":{"n":1.0,"id":"1"}}"#,
        r#"{"event_id":"no source","payload":{}}"#,
    ]
    .join("\n");
    let output = hooklatch(&db, &["import", "-"], Some(&input));
    assert_eq!(
        stdout(&output).trim(),
        "1 processed, 1 duplicate, 1 conflict, 4 invalid"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3: invalid"), "{stderr}");
    assert!(
        stderr.contains("line 5: invalid") && stderr.contains("order_id"),
        "{stderr}"
    );

    let missing = hooklatch(&db, &["import", "/nonexistent/export.jsonl"], None);
    assert_eq!(missing.status.code(), Some(1));
}

/// SPEC §5.2 (issue 17, item 14): a line that is not JSON, or not an object, stops the
/// import at that line, which is named; what came before it is recorded, nothing after
/// (on PostgreSQL too, whose import writes over two connections).
#[test]
fn import_stops_at_an_unreadable_line_keeps_what_came_before_and_exits_1() {
    let cases = [("not json at all", "not JSON"), ("[1,2,3]", "an array")];
    for (backend, (unreadable, what)) in [Backend::Sqlite, Backend::Postgres]
        .into_iter()
        .flat_map(|b| cases.map(|case| (b, case)))
    {
        let Some(db) = TestDb::fresh(backend, "import_unreadable") else {
            continue;
        };
        let line = |id: &str| {
            format!(
                r#"{{"source":"acme","event_id":"{id}","event_type":"t","payload":{{"id":"{id}"}}}}"#
            )
        };
        let input = [line("a"), line("b"), unreadable.to_owned(), line("c")].join("\n");
        let output = hooklatch(&db, &["import", "-"], Some(&input));
        assert_eq!(output.status.code(), Some(1), "{what}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout).trim(),
            "2 processed, 0 duplicate, 0 conflict, 0 invalid",
            "{what}"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("line 3"), "{what}: {stderr}");
        assert_eq!(db.totals().events, 2, "{what}: a and b kept, c never read");
    }
}

#[test]
fn events_list_and_show_as_text_and_json() {
    let db = TestDb::fresh(Backend::Sqlite, "events_list_show").unwrap();
    let app = db.app();
    runtime().block_on(record_a_mixed_history(&app));

    let table = stdout(&hooklatch(&db, &["events", "list", "--limit", "3"], None));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[0].starts_with("FIRST SEEN (UTC)"));
    assert!(rows[1].contains("APPROVED_CONVERSION:555"), "{table}");

    let json = stdout(&hooklatch(
        &db,
        &["events", "list", "--source", "refersion", "--json"],
        None,
    ));
    let items: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|i| i["source"] == "refersion"));
    let since = items[1]["first_seen_at"].as_str().unwrap();
    let newer = stdout(&hooklatch(
        &db,
        &["events", "list", "--json", "--since", since],
        None,
    ));
    assert!(newer.lines().count() >= 2);

    let show = stdout(&hooklatch(
        &db,
        &["events", "show", "refersion", "r1"],
        None,
    ));
    assert!(show.contains("deliveries      2"), "{show}");
    assert!(show.contains("conflicts       1"), "{show}");
    assert!(
        show.contains("\"commission_amount\": 0.10"),
        "payload pretty-printed: {show}"
    );
    assert!(show.contains("conflict 1 received"), "{show}");
    let shown: Value = serde_json::from_str(&stdout(&hooklatch(
        &db,
        &["events", "show", "refersion", "r1", "--json"],
        None,
    )))
    .unwrap();
    assert_eq!(shown["conversion"]["commission_amount"], "0.10");
    assert_eq!(shown["conflicts"].as_array().unwrap().len(), 1);

    let unknown = hooklatch(&db, &["events", "show", "refersion", "nope"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no event refersion / nope"));
    let bad = hooklatch(&db, &["events", "list", "--since", "yesterday"], None);
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn prune_command_clears_payloads_and_a_retry_is_still_a_duplicate() {
    let db = TestDb::fresh(Backend::Sqlite, "prune_command").unwrap();
    let app = db.app();
    runtime().block_on(record_a_mixed_history(&app));
    let none = stdout(&hooklatch(
        &db,
        &["prune", "--payloads-older-than", "1d"],
        None,
    ));
    assert!(
        none.starts_with("cleared the payloads of 0 events and 0 conflicts"),
        "{none}"
    );
    let dry = stdout(&hooklatch(
        &db,
        &["prune", "--payloads-older-than", "1m", "--dry-run"],
        None,
    ));
    assert!(
        dry.starts_with("would clear the payloads of 0 events"),
        "{dry}"
    );
    let bad = hooklatch(&db, &["prune", "--payloads-older-than", "soon"], None);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("soon"),
        "{bad:?}"
    );

    // Everything is older than "now", so prune through the store with a zero age.
    let pruned = db
        .store
        .prune_payloads(
            &hooklatch::read::Timestamp::ago(std::time::Duration::ZERO),
            false,
        )
        .unwrap();
    assert_eq!((pruned.events, pruned.conflicts), (11, 1));
    let exported = stdout(&hooklatch(&db, &["export", "--source", "refersion"], None));
    assert!(
        exported.lines().all(|l| l.contains(r#""payload":null"#)),
        "{exported}"
    );
    let retry = runtime()
        .block_on(async { post(&app, "/webhooks/refersion", &[], &sale("r2", "0.20")).await });
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{retry:?}");
    assert_eq!(retry.body["status"], "accepted");
}

#[test]
fn serve_turns_the_admin_side_on_with_its_token_and_prunes_by_payload_retention() {
    use common::binary::{Server, exchange, get, server_args, wait_until};
    let db = TestDb::fresh(Backend::Sqlite, "serve_admin_retention").unwrap();
    let app = db.app();
    runtime().block_on(async {
        post(&app, "/webhooks/acme", &[], r#"{"id":"old","type":"t"}"#).await;
        post(&app, "/webhooks/acme", &[], r#"{"id":"new","type":"t"}"#).await;
    });
    common::execute_sql(
        &db.url,
        // An event from 2020: first and last seen then (last_seen_at never precedes
        // first_seen_at, and pruning walks first_seen_at).
        "UPDATE webhook_events SET first_seen_at = '2020-01-01T00:00:00.000000Z', \
             last_seen_at = '2020-01-01T00:00:00.000000Z' WHERE external_event_id = 'old'",
    );
    let url = url_text(&db.url);
    let token = "serve-admin-token-0123456789";

    let mut off = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    off.args(server_args(&url, &[]))
        .env_remove("HOOKLATCH_ADMIN_TOKEN")
        .env_remove("HOOKLATCH_PAYLOAD_RETENTION");
    let server = Server::spawn(off);
    assert_eq!(get(server.addr, "/admin/api/stats").unwrap().status, 404);
    server.stop();

    let mut on = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    on.args(server_args(&url, &[]))
        .env("HOOKLATCH_ADMIN_TOKEN", token)
        .env("HOOKLATCH_PAYLOAD_RETENTION", "30d");
    let server = Server::spawn(on);
    let authorized = |path: &str| {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n",
            server.addr
        );
        exchange(server.addr, request.as_bytes()).unwrap()
    };
    let stats = authorized("/admin/api/stats");
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.json()["sources"][0]["events"], 2);
    assert_eq!(get(server.addr, "/admin/api/stats").unwrap().status, 401);

    // The retention pass runs at start: the old payload goes, the new one stays.
    let pruned = wait_until(Duration::from_secs(20), || {
        authorized("/admin/api/events/acme/old").json()["payload"].is_null()
    });
    assert!(pruned, "{}", server.log());
    assert!(!authorized("/admin/api/events/acme/new").json()["payload"].is_null());
    server.stop();
}
