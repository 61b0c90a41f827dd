//! `forward=pending|failed` walks the outbox in its events' order (migration 010's
//! `event_seen_at` and `idx_forward_outbox_listed`): the list and its pages come in the
//! event list's own order (first seen, newest first), on both stores, however the outbox
//! entry was written (by the receive path, a replay that re-queues old events, or by hand).
//! `tests/plans.rs` checks that the list is one index range with no sort.

mod common;

use common::{TestDb, execute_sql, post};
use hooklatch::model::Source;
use hooklatch::read::{Cursor, EventFilter, EventItem, ForwardStatus, Timestamp};

contract!(forward_lists_keep_the_event_order_and_page_without_gaps);

fn ids(items: &[EventItem]) -> Vec<String> {
    items.iter().map(|e| e.event_id.clone()).collect()
}

/// Every page of `filter`, `size` at a time, through the cursor.
fn all_pages(db: &TestDb, filter: &EventFilter, size: u32) -> Vec<String> {
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    loop {
        let rows = db
            .store
            .list_events(filter, cursor.as_ref(), size + 1)
            .unwrap();
        let (page, next) = hooklatch::read::page(rows, size, |e| e.cursor());
        seen.extend(ids(&page));
        match next {
            Some(text) => cursor = Some(Cursor::decode(&text).unwrap()),
            None => return seen,
        }
    }
}

async fn forward_lists_keep_the_event_order_and_page_without_gaps(db: &TestDb) {
    let config = db.config_forwarding_shop();
    let app = db.admin_app_with(&config);
    for n in 0..20 {
        let body = format!(r#"{{"id":"f{n}","type":"t","n":"{n}"}}"#);
        let reply = post(&app, "/webhooks/shop", &[], &body).await;
        assert!(reply.status.is_success(), "{reply:?}");
    }
    // Every third event failed; f4's entry was lost and written again by hand, without
    // the event's time (the store fills it in).
    execute_sql(
        &db.url,
        "UPDATE forward_outbox SET state = 'delivered', attempts = 1;
         UPDATE forward_outbox SET state = 'failed', attempts = 20
          WHERE webhook_event_id IN (SELECT id FROM webhook_events
                                      WHERE external_event_id IN
                                      ('f0', 'f3', 'f6', 'f9', 'f12', 'f15', 'f18'));
         DELETE FROM forward_outbox
          WHERE webhook_event_id = (SELECT id FROM webhook_events WHERE external_event_id = 'f4');
         INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at, created_at)
         SELECT id, 'shop', 'failed', 20, first_seen_at, first_seen_at
           FROM webhook_events WHERE external_event_id = 'f4';",
    );
    let everything = db
        .store
        .list_events(&EventFilter::default(), None, 100)
        .unwrap();
    assert_eq!(everything.len(), 20);
    let in_state = |state: &str| -> Vec<String> {
        everything
            .iter()
            .filter(|e| e.forward.as_ref().is_some_and(|f| f.state == state))
            .map(|e| e.event_id.clone())
            .collect()
    };
    let failed = EventFilter {
        forward: Some(ForwardStatus::Failed),
        ..Default::default()
    };
    let expected = in_state("failed");
    assert_eq!(
        expected,
        ["f18", "f15", "f12", "f9", "f6", "f4", "f3", "f0"]
    );
    assert_eq!(
        ids(&db.store.list_events(&failed, None, 50).unwrap()),
        expected
    );
    for size in [1, 3, 7] {
        assert_eq!(all_pages(db, &failed, size), expected, "pages of {size}");
    }

    // since (inclusive) and until (exclusive) bound the same walk.
    let f9 = everything.iter().find(|e| e.event_id == "f9").unwrap();
    let at = Timestamp::parse(&f9.first_seen_at, "since").unwrap();
    let newer = EventFilter {
        since: Some(at.clone()),
        ..failed.clone()
    };
    assert_eq!(all_pages(db, &newer, 2), ["f18", "f15", "f12", "f9"]);
    let older = EventFilter {
        until: Some(at),
        ..failed.clone()
    };
    assert_eq!(all_pages(db, &older, 2), ["f6", "f4", "f3", "f0"]);

    // A replay queues old events again now: they list by their events' time, not by
    // when they were queued.
    let shop = Source::parse("shop").unwrap();
    let first = everything.last().unwrap();
    let since = Timestamp::parse(&first.first_seen_at, "since").unwrap();
    let queued = db.store.replay_forwards(&shop, &since, None).unwrap();
    assert_eq!(queued, 20);
    let pending = EventFilter {
        forward: Some(ForwardStatus::Pending),
        ..Default::default()
    };
    let newest_first: Vec<String> = (0..20).rev().map(|n| format!("f{n}")).collect();
    assert_eq!(all_pages(db, &pending, 6), newest_first);
    assert!(db.store.list_events(&failed, None, 50).unwrap().is_empty());
}
