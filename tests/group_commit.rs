//! The SQLite writer thread: events queued together commit together, one failing event
//! fails alone, and no connection commits a new event at a weaker durability than the
//! one configured, whatever left it there.

mod common;

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hooklatch::config::DatabaseUrl;
use hooklatch::model::{Amount, EventId, NewConversion, NewEvent, Outcome, Source};
use hooklatch::store::{
    AdminReads, Operations, Receiving, SqliteStore, Store, StoreError, StoreOptions,
};

fn event(id: &str) -> NewEvent {
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

/// A seed-style sale under `id`, so it writes a conversion before its event.
fn sale(id: &str) -> NewEvent {
    NewEvent {
        conversion: Some(NewConversion::sale(
            format!("order-{id}"),
            Amount::parse("1.50").unwrap(),
            Amount::parse("10").unwrap(),
            Some("USD".into()),
            None,
        )),
        ..event(id)
    }
}

fn open(dir: &tempfile::TempDir, options: &StoreOptions) -> Arc<SqliteStore> {
    let store = SqliteStore::open(&dir.path().join("hooklatch.db"), options).expect("open");
    store.migrate().expect("migrate");
    Arc::new(store)
}

/// Holds the writer thread inside a job until released, so whatever is queued meanwhile
/// lands in one batch.
fn hold_writer(store: &Arc<SqliteStore>) -> (mpsc::Receiver<()>, mpsc::SyncSender<()>) {
    let (entered_tx, entered) = mpsc::sync_channel(1);
    let (release, release_rx) = mpsc::sync_channel::<()>(1);
    let store = store.clone();
    std::thread::spawn(move || {
        store
            .with_writer(move |_| {
                entered_tx.send(()).expect("signal");
                release_rx.recv().expect("release");
                Ok(())
            })
            .expect("held job");
    });
    (entered, release)
}

#[test]
fn a_failing_event_in_a_batch_fails_alone_and_its_batch_mates_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, &StoreOptions::default());
    // A trigger that refuses one id, as a row the database cannot take would.
    store
        .with_writer(|conn| {
            conn.execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON webhook_events
                 WHEN NEW.external_event_id = 'poison'
                 BEGIN SELECT RAISE(ABORT, 'poisoned row'); END;",
            )
            .map_err(|e| StoreError::Internal(e.to_string()))
        })
        .unwrap();

    let (entered, release) = hold_writer(&store);
    entered.recv().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ids: Vec<String> = (0..8)
        .map(|i| format!("mate-{i}"))
        .chain(["poison".to_owned()])
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    // Each carries a sale: its conversion row is written before its event row, so the
    // poison's conversion exists inside its savepoint when its event insert fails, and
    // only rolling back to that savepoint takes it out again.
    let pending: Vec<_> = ids
        .iter()
        .map(|id| {
            let store: Arc<dyn Store> = store.clone();
            runtime.spawn(store.process_async(sale(id), deadline))
        })
        .collect();
    // Every request is on the writer's queue while it is held: then one batch takes all.
    let waited = Instant::now();
    while store.queued_writes() < ids.len() {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "requests never queued"
        );
        std::thread::yield_now();
    }
    release.send(()).unwrap();

    let results: Vec<_> = runtime.block_on(async {
        let mut out = Vec::new();
        for p in pending {
            out.push(p.await.expect("task"));
        }
        out
    });
    for (id, result) in ids.iter().zip(&results) {
        match (id.as_str(), result) {
            ("poison", Err(StoreError::Internal(message))) => {
                assert!(message.contains("poisoned row"), "{message}")
            }
            ("poison", other) => panic!("poison: {other:?}"),
            (_, Ok((Outcome::Processed(_), _))) => {}
            (id, other) => panic!("{id}: {other:?}"),
        }
    }
    let totals = common::totals(&DatabaseUrl::Sqlite(dir.path().join("hooklatch.db")));
    assert_eq!(
        totals.events, 8,
        "every batch-mate committed, the poison did not"
    );
    assert_eq!(
        totals.conversions, 8,
        "the poison's conversion was rolled back with its savepoint"
    );
    let summary = store.conversion_summary().unwrap();
    assert_eq!(
        summary.iter().map(|g| g.count).sum::<i64>(),
        8,
        "the kept totals count the batch-mates' conversions only: {summary:?}"
    );
    let source = Source::parse("shop").unwrap();
    assert!(
        store
            .event(&source, &EventId::parse("poison", "id").unwrap())
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_connection_left_at_normal_is_put_back_to_full_before_the_next_new_event() {
    let dir = tempfile::tempdir().unwrap();
    // One connection, so the writer's next batch runs on the very connection disturbed.
    let options = StoreOptions {
        pool_size: 1,
        ..StoreOptions::default()
    };
    let store = open(&dir, &options);
    let level = |store: &SqliteStore| {
        store
            .with_writer(|conn| {
                conn.pragma_query_value(None, "synchronous", |row| row.get::<_, i64>(0))
                    .map_err(|e| StoreError::Internal(e.to_string()))
            })
            .unwrap()
    };
    assert_eq!(level(&store), 2, "FULL from the start");

    // What a failed "put the pragma back" used to leave behind.
    store
        .with_writer(|conn| {
            conn.pragma_update(None, "synchronous", "NORMAL")
                .map_err(|e| StoreError::Internal(e.to_string()))
        })
        .unwrap();
    assert_eq!(level(&store), 1);

    let outcome = store.process(&event("after-the-slip")).unwrap();
    assert!(matches!(outcome, Outcome::Processed(_)), "{outcome:?}");
    assert_eq!(
        level(&store),
        2,
        "the commit of the new event ran at FULL, not at the level it found"
    );
}

#[test]
fn duplicates_are_counted_without_the_writer_and_read_back_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, &StoreOptions::default());
    let first = store.process(&event("counted")).unwrap();
    assert!(matches!(first, Outcome::Processed(_)));

    // With the writer held, duplicates still answer: they never wait for it.
    let (entered, release) = hold_writer(&store);
    entered.recv().unwrap();
    for _ in 0..5 {
        let outcome = store.process(&event("counted")).unwrap();
        assert!(matches!(outcome, Outcome::Duplicate(_)), "{outcome:?}");
    }
    release.send(()).unwrap();

    let stored = store
        .event(
            &Source::parse("shop").unwrap(),
            &EventId::parse("counted", "id").unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(stored.delivery_count, 6);
}

/// The WAL is copied into the database file by the checkpointer thread soon after
/// commits, not inside the writer's `COMMIT` once the WAL passes SQLite's automatic
/// threshold: the connections keep that threshold only as a far backstop. Fifty events
/// log a few hundred pages, below both thresholds, so only the checkpointer can move
/// them into the main file.
#[test]
fn commits_reach_the_database_file_through_the_checkpointer_not_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir, &StoreOptions::default());
    let backstop: i64 = store
        .with_writer(|conn| {
            conn.pragma_query_value(None, "wal_autocheckpoint", |row| row.get(0))
                .map_err(|e| StoreError::Internal(e.to_string()))
        })
        .unwrap();
    assert!(
        backstop >= 10_000,
        "the writer's automatic checkpoint is only a backstop: {backstop}"
    );

    let file = dir.path().join("hooklatch.db");
    let size = || std::fs::metadata(&file).unwrap().len();
    let before = size();
    for i in 0..50 {
        let outcome = store.process(&sale(&format!("ckpt-{i}"))).unwrap();
        assert!(matches!(outcome, Outcome::Processed(_)), "{outcome:?}");
    }
    let wal_frames = std::fs::metadata(dir.path().join("hooklatch.db-wal"))
        .unwrap()
        .len()
        / 4120;
    assert!(
        wal_frames < 1_000,
        "the test stays below SQLite's own threshold: {wal_frames} frames"
    );

    // Waits for the checkpoint (an event on another thread), with a bound.
    let deadline = Instant::now() + Duration::from_secs(10);
    while size() <= before + 8 * 4096 {
        assert!(
            Instant::now() < deadline,
            "no checkpoint moved the new pages into the file: {} bytes, {before} before",
            size()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let events: i64 = store.source_stats().unwrap().iter().map(|s| s.events).sum();
    assert_eq!(events, 50);
}
