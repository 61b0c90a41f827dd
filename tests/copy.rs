//! Moving between stores without losing anything (SPEC §5.2, issue 18): faithful
//! `export`/`import`, and `hooklatch copy`, in both directions.

mod common;

use std::sync::Arc;

use common::{Backend, TestDb, conversion_body, post, sale};
use hooklatch::App;
use hooklatch::cli;
use hooklatch::read::ConversionFilter;
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
    let store = transfer(db);
    let mut errors = Vec::new();
    let counts = cli::import::run(
        store.as_ref(),
        &db.config().sources,
        lines.as_bytes(),
        &mut errors,
    )
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
