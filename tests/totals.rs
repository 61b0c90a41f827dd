//! The totals kept as events arrive (migration 008): after any mix of traffic they equal
//! a recount of the rows, on both stores; two PostgreSQL instances writing at once keep
//! them exact; and `verify-totals` finds drift made by hand and repairs it.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{ADMIN_TOKEN, Backend, TestDb, admin_get, conversion_body, execute_sql, post, sale};
use hooklatch::config::DatabaseUrl;
use hooklatch::model::{Amount, EventId, NewConversion, NewEvent, Source};
use hooklatch::read::Timestamp;
use hooklatch::store::{PostgresStore, Store, StoreOptions};
use serde_json::Value;
use warp::http::StatusCode;

contract!(
    totals_equal_a_recount_after_mixed_traffic,
    verify_totals_finds_a_hand_made_drift_and_repairs_it,
);

/// A store-level event of `source`; a sale of `commission` when given.
fn event(source: &str, id: &str, fingerprint: &str, commission: Option<&str>) -> NewEvent {
    NewEvent {
        source: Source::parse(source).unwrap(),
        event_id: EventId::parse(id, "id").unwrap(),
        event_type: Some("sale".into()),
        payload: format!(r#"{{"event_id":"{id}","f":"{fingerprint}"}}"#),
        fingerprint: fingerprint.into(),
        conversion: commission.map(|c| {
            NewConversion::sale(
                format!("o-{id}"),
                Amount::parse(c).unwrap(),
                Amount::parse("10.5").unwrap(),
                Some("EUR".into()),
                None,
            )
        }),
        forward: false,
    }
}

async fn refersion_topic(app: &Arc<hooklatch::App>, topic: &str, body: &str) -> StatusCode {
    post(
        app,
        "/webhooks/refersion",
        &[("Refersion-Topic", topic)],
        body,
    )
    .await
    .status
}

async fn stats(app: &Arc<hooklatch::App>) -> Value {
    let reply = admin_get(app, "/admin/api/stats", Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

async fn summary(app: &Arc<hooklatch::App>) -> Value {
    let reply = admin_get(app, "/admin/api/conversions/summary", Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

fn assert_exact(store: &Arc<dyn Store>) {
    let check = store.verify_totals().expect("verify");
    assert!(check.is_exact(), "{check}");
}

async fn totals_equal_a_recount_after_mixed_traffic(db: &TestDb) {
    let app = db.admin_app();
    // New sales, a true duplicate, a conflict (same id, other amount) on Refersion.
    for (id, commission) in [("s1", "1.10"), ("s2", "2.20"), ("s3", "3.30")] {
        assert_eq!(
            post(&app, "/webhooks/refersion", &[], &sale(id, commission))
                .await
                .status,
            StatusCode::OK
        );
    }
    post(&app, "/webhooks/refersion", &[], &sale("s1", "1.10")).await;
    post(&app, "/webhooks/refersion", &[], &sale("s2", "9.99")).await;
    // A Refersion conversion through its lifecycle: created PENDING, approved with
    // another total (it moves between groups), a stale PENDING that changes nothing, a
    // repeat of the approval.
    let conversion = 555_001;
    let pending = conversion_body(conversion, "PENDING", "59.00", None);
    let approved = conversion_body(conversion, "APPROVED", "61.00", Some("2026-01-06 08:00:00"));
    let stale = conversion_body(conversion, "PENDING", "40.00", Some("2026-01-05 08:00:00"));
    assert_eq!(
        refersion_topic(&app, "NEW_CONVERSION", &pending).await,
        StatusCode::OK
    );
    assert_eq!(
        refersion_topic(&app, "APPROVED_CONVERSION", &approved).await,
        StatusCode::OK
    );
    refersion_topic(&app, "PENDING_CONVERSION", &stale).await;
    refersion_topic(&app, "APPROVED_CONVERSION", &approved).await;
    // Store-level traffic from a second source, with duplicates counted in batches.
    let store = db.store.clone();
    tokio::task::spawn_blocking(move || {
        for i in 0..20 {
            let commission = (i % 3 == 0).then_some("0.05");
            store
                .process(&event("other", &format!("o{i}"), "a", commission))
                .unwrap();
        }
        for i in 0..10 {
            store
                .process(&event("other", &format!("o{i}"), "a", None))
                .unwrap();
        }
        store.process(&event("other", "o1", "b", None)).unwrap();
    })
    .await
    .unwrap();
    assert_exact(&db.store);

    let stats = stats(&app).await;
    let sources = stats["sources"].as_array().unwrap();
    let other = sources.iter().find(|s| s["source"] == "other").unwrap();
    assert_eq!(other["events"], 20);
    assert_eq!(other["deliveries"], 31);
    assert_eq!(other["duplicates"], 11);
    assert_eq!(other["conflicts"], 1);
    let refersion = sources.iter().find(|s| s["source"] == "refersion").unwrap();
    assert_eq!(
        refersion["events"],
        3 + 3,
        "three sales, three conversion topics"
    );
    assert_eq!(refersion["deliveries"], 3 + 2 + 4);
    assert_eq!(refersion["conflicts"], 1);

    let summary = summary(&app).await;
    let groups = summary["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("{summary}"));
    let approved = groups
        .iter()
        .find(|g| g["status"] == "APPROVED")
        .unwrap_or_else(|| panic!("{summary}"));
    assert_eq!(approved["count"], 1);
    assert!(
        groups.iter().all(|g| g["status"] != "PENDING"),
        "the conversion left PENDING: {summary}"
    );

    // Prune clears payloads only: every count stays.
    let pruned = db
        .store
        .prune_payloads(&Timestamp::ago(Duration::ZERO), false)
        .unwrap();
    assert!(pruned.events > 0);
    assert_exact(&db.store);
    assert_eq!(self::stats(&app).await, stats);

    if db.backend == Backend::Postgres {
        // Folding moves the deltas into the totals and changes no answer.
        folding_store(db).fold_totals().unwrap();
        assert_exact(&db.store);
        assert_eq!(self::stats(&app).await, stats);
        assert_eq!(self::summary(&app).await, summary);
    }
}

/// A second handle on the test's PostgreSQL database, typed, for `fold_totals`.
fn folding_store(db: &TestDb) -> PostgresStore {
    let DatabaseUrl::Postgres(url) = &db.url else {
        panic!("PostgreSQL only")
    };
    let url = url.clone();
    std::thread::spawn(move || PostgresStore::open(&url, &StoreOptions::default()).unwrap())
        .join()
        .unwrap()
}

fn url_text(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.clone(),
        DatabaseUrl::SqliteMemory => panic!("another process cannot open an in-memory store"),
    }
}

/// `hooklatch verify-totals ARGS` on the test's store: (success, stdout + stderr).
fn verify_totals_command(db: &TestDb, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_hooklatch"))
        .arg("verify-totals")
        .args(args)
        .env_remove("HOOKLATCH_CONFIG")
        .env("DATABASE_URL", url_text(&db.url))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run hooklatch");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

async fn verify_totals_finds_a_hand_made_drift_and_repairs_it(db: &TestDb) {
    let app = db.admin_app();
    for (id, commission) in [("d1", "1.00"), ("d2", "2.00")] {
        post(&app, "/webhooks/refersion", &[], &sale(id, commission)).await;
    }
    let (ok, text) = verify_totals_command(db, &[]);
    assert!(ok, "{text}");
    assert!(text.contains("totals exact"), "{text}");

    // Drift by hand: five events and a cent that never happened.
    execute_sql(
        &db.url,
        match db.backend {
            Backend::Sqlite => {
                "UPDATE source_totals SET events = events + 5; \
                 UPDATE conversion_totals SET commission_amount = '3.01';"
            }
            Backend::Postgres => {
                "INSERT INTO source_total_deltas VALUES ('refersion', 5, 0, 0, now()); \
                 INSERT INTO conversion_total_deltas \
                     SELECT status, currency, 0, 0, 0.01 FROM conversions LIMIT 1;"
            }
        },
    );
    let check = db.store.verify_totals().unwrap();
    assert_eq!(check.drift.len(), 2, "{check}");
    assert!(check.drift[0].contains("source refersion"), "{check}");
    assert!(check.drift[1].contains("conversions"), "{check}");

    let (ok, text) = verify_totals_command(db, &[]);
    assert!(!ok, "drift fails the command: {text}");
    assert!(text.contains("source refersion"), "{text}");
    assert!(text.contains("--repair"), "{text}");

    let (ok, text) = verify_totals_command(db, &["--repair"]);
    assert!(ok, "{text}");
    assert!(text.contains("repaired"), "{text}");
    assert_exact(&db.store);
    let stats = stats(&app).await;
    assert_eq!(stats["sources"][0]["events"], 2);
}

/// Two instances on one PostgreSQL database, each on its own threads, both delivering
/// new events, duplicates, conflicts and moves of the same conversions at once, while
/// both fold: the totals stay exact.
#[test]
fn two_postgres_instances_writing_at_once_keep_exact_totals() {
    let Some(db) = TestDb::fresh(Backend::Postgres, "two_instances_totals") else {
        return;
    };
    let second = db.reopen();
    let stores = [db.store.clone(), second];
    std::thread::scope(|scope| {
        for (n, store) in stores.iter().enumerate() {
            for t in 0..4 {
                let store = store.clone();
                scope.spawn(move || {
                    for i in 0..40 {
                        // Shared ids: the instances race for them.
                        let id = format!("e{}", (i * 7 + t) % 60);
                        let commission = (i % 2 == 0).then_some("1.25");
                        store.process(&event("race", &id, "a", commission)).unwrap();
                        if i % 5 == 0 {
                            store.process(&event("race", &id, "z", None)).unwrap();
                        }
                        store
                            .process(&event(&format!("own{n}"), &format!("{t}-{i}"), "a", None))
                            .unwrap();
                    }
                });
            }
            let folder = folding_store(&db);
            scope.spawn(move || {
                for _ in 0..20 {
                    folder.fold_totals().unwrap();
                }
            });
        }
    });
    drop(stores);
    assert_exact(&db.store);
    let stats = db.store.source_stats().unwrap();
    let race = stats.iter().find(|s| s.source == "race").unwrap();
    assert_eq!(race.events, 60, "{stats:?}");
    assert_eq!(race.deliveries, 2 * 4 * (40 + 8), "{stats:?}");
    for n in 0..2 {
        let own = stats
            .iter()
            .find(|s| s.source == format!("own{n}"))
            .unwrap();
        assert_eq!(own.events, 4 * 40, "{stats:?}");
    }
}

/// Rebuilding the totals (`copy`'s last step, `verify-totals --repair`) while deliveries
/// run: it waits for no delivery's transaction, and the delivery's changes, committed
/// after the rebuild counted, are still in the totals. A delivery takes the two delta
/// tables in either order (a sale's conversion first, or its event first), so a rebuild
/// that locked them deadlocked with one of the two orders.
#[test]
fn a_rebuild_of_the_totals_waits_for_no_delivery_and_misses_none() {
    let Some(db) = TestDb::fresh(Backend::Postgres, "rebuild_live") else {
        return;
    };
    db.store
        .process(&event("rb", "sale", "a", Some("1.00")))
        .unwrap();
    db.store.process(&event("rb", "plain", "a", None)).unwrap();
    let DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let mut client = common::admin_client(url).unwrap();
    let mut delivery = client.transaction().unwrap();
    // A conversion moved, uncommitted: its delta table is in use.
    delivery
        .execute("UPDATE conversions SET status = 'APPROVED'", &[])
        .unwrap();

    let (done, rebuilt) = std::sync::mpsc::channel();
    let store = db.store.clone();
    std::thread::spawn(move || done.send(store.recompute_totals()));
    rebuilt
        .recv_timeout(Duration::from_secs(60))
        .expect("the rebuild waited for a delivery's open transaction")
        .expect("rebuild");

    // The same delivery now reaches the other delta table, and commits.
    delivery
        .execute(
            "UPDATE webhook_events SET conflict_count = conflict_count + 1 \
              WHERE external_event_id = 'plain'",
            &[],
        )
        .unwrap();
    delivery.commit().unwrap();
    assert_exact(&db.store);
    let stats = db.store.source_stats().unwrap();
    assert_eq!((stats[0].events, stats[0].conflicts), (2, 1), "{stats:?}");
    let groups = db.store.conversion_summary().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0].status.as_deref(), Some("APPROVED"), "{groups:?}");
}
