//! The admin side on both stores: the read verbs (contract cases, the same answers on
//! SQLite and PostgreSQL), the admin JSON API with its bearer token, rejections,
//! pruning and export/import.

mod common;

use std::sync::Arc;

use common::{ADMIN_TOKEN, TestDb, admin_get, execute_sql, post, request, sale};
use hooklatch::App;
use hooklatch::model::{EventId, Source};
use hooklatch::read::{
    ConversionFilter, Cursor, EventFilter, ExportFilter, ForwardStatus, Timestamp,
};
use serde_json::{Value, json};
use warp::http::StatusCode;

contract!(
    event_list_is_newest_first_and_every_filter_narrows_it,
    walking_the_cursor_visits_each_event_once_while_new_ones_arrive,
    conversion_list_filters_and_exact_summary,
    source_stats_count_deliveries_duplicates_and_conflicts,
    export_walks_oldest_first_with_payloads,
    prune_clears_payloads_and_a_retry_is_still_a_duplicate,
    admin_paths_are_404_while_the_admin_side_is_off,
    the_api_answers_401_to_anything_without_the_token,
    api_events_page_filter_and_refuse_bad_parameters,
    api_event_detail_has_payload_conflicts_and_conversion,
    api_conversions_summary_and_stats,
    api_rejections_keep_refusals_without_bodies_or_secrets,
    payload_retention_pass_prunes_what_is_older_than_the_retention,
    the_api_and_the_console_queue_a_forward_again_behind_token_and_csrf,
    cli_tables_escape_control_characters_of_stored_ids,
    amounts_have_at_most_eighteen_integer_digits_and_sum_exactly,
    a_refusal_reason_is_bounded_and_never_quotes_the_body,
    the_console_pauses_resumes_and_replays_a_source_and_shows_the_attempts,
    a_console_session_is_valid_on_every_instance_with_the_token_until_it_expires,
    ten_wrong_tokens_from_one_address_get_429_even_with_the_right_token,
);

fn source(name: &str) -> Source {
    Source::parse(name).unwrap()
}

/// A Standard-Webhooks-style delivery to `src` with body id and type.
async fn deliver(app: &Arc<App>, src: &str, id: &str, kind: &str, extra: &str) -> Value {
    let body = format!(r#"{{"id":"{id}","type":"{kind}","n":"{extra}"}}"#);
    let reply = post(app, &format!("/webhooks/{src}"), &[], &body).await;
    assert!(reply.status.is_success(), "{reply:?}");
    reply.body
}

fn ids(items: &[hooklatch::read::EventItem]) -> Vec<&str> {
    items.iter().map(|e| e.event_id.as_str()).collect()
}

async fn event_list_is_newest_first_and_every_filter_narrows_it(db: &TestDb) {
    let app = db.app();
    for (src, id, kind) in [
        ("acme", "a1", "order.created"),
        ("acme", "a2", "order.paid"),
        ("beta", "b1", "order.created"),
        ("acme", "a3", "order.created"),
        ("beta", "shared", "ping"),
        ("acme", "shared", "ping"),
    ] {
        deliver(&app, src, id, kind, "x").await;
    }
    deliver(&app, "acme", "a2", "order.paid", "x").await; // duplicate
    deliver(&app, "beta", "b1", "order.created", "changed").await; // conflict
    let store = &db.store;
    let all = store
        .list_events(&EventFilter::default(), None, 50)
        .unwrap();
    assert_eq!(ids(&all), ["shared", "shared", "a3", "b1", "a2", "a1"]);
    assert_eq!(all[0].source, "acme");
    let a2 = &all[4];
    assert_eq!(a2.delivery_count, 2);
    assert_eq!(a2.conflict_count, 0);
    assert_eq!(a2.event_type.as_deref(), Some("order.paid"));
    assert!(a2.last_seen_at > a2.first_seen_at);
    assert_eq!(a2.forward, None);

    let list = |filter: EventFilter| store.list_events(&filter, None, 50).unwrap();
    let by_source = list(EventFilter {
        source: Some(source("beta")),
        ..Default::default()
    });
    assert_eq!(ids(&by_source), ["shared", "b1"]);
    let by_type = list(EventFilter {
        event_type: Some("order.created".into()),
        ..Default::default()
    });
    assert_eq!(ids(&by_type), ["a3", "b1", "a1"]);
    let by_id = list(EventFilter {
        event_id: Some("shared".into()),
        ..Default::default()
    });
    assert_eq!(by_id.len(), 2);
    let by_id_and_source = list(EventFilter {
        event_id: Some("shared".into()),
        source: Some(source("beta")),
        ..Default::default()
    });
    assert_eq!(by_id_and_source.len(), 1);
    assert_eq!(by_id_and_source[0].source, "beta");
    let not_exact = list(EventFilter {
        event_id: Some("SHARED".into()),
        ..Default::default()
    });
    assert!(not_exact.is_empty(), "ids are compared exactly");
    let duplicated = list(EventFilter {
        duplicated: Some(true),
        ..Default::default()
    });
    // A conflict is a delivery too: b1 was delivered twice.
    assert_eq!(ids(&duplicated), ["b1", "a2"]);
    let conflicted = list(EventFilter {
        conflicted: Some(true),
        ..Default::default()
    });
    assert_eq!(ids(&conflicted), ["b1"]);
    let clean = list(EventFilter {
        conflicted: Some(false),
        duplicated: Some(false),
        ..Default::default()
    });
    assert_eq!(ids(&clean), ["shared", "shared", "a3", "a1"]);

    // since is inclusive, until exclusive, both on first_seen_at.
    let since = Timestamp::parse(&all[3].first_seen_at, "since").unwrap();
    let newer = list(EventFilter {
        since: Some(since.clone()),
        ..Default::default()
    });
    assert_eq!(ids(&newer), ["shared", "shared", "a3", "b1"]);
    let older = list(EventFilter {
        until: Some(since),
        ..Default::default()
    });
    assert_eq!(ids(&older), ["a2", "a1"]);

    // Forwarding state comes from the outbox, which the forward lane's worker fills.
    let a1 = all[5].webhook_event_id;
    let a3 = all[2].webhook_event_id;
    execute_sql(
        &db.url,
        &format!(
            "INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at, last_status, last_error, created_at) \
             VALUES ({a1}, 'acme', 'failed', 20, '2026-11-30T08:00:00.000000Z', 500, 'HTTP 500', '2026-11-30T08:00:00.000000Z'); \
             INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at, last_status, delivered_at, created_at) \
             VALUES ({a3}, 'acme', 'delivered', 1, '2026-11-30T08:00:00.000000Z', 204, '2026-11-30T08:00:01.000000Z', '2026-11-30T08:00:00.000000Z');"
        ),
    );
    let failed = list(EventFilter {
        forward: Some(ForwardStatus::Failed),
        ..Default::default()
    });
    assert_eq!(ids(&failed), ["a1"]);
    let forward = failed[0].forward.as_ref().unwrap();
    assert_eq!(forward.state, "failed");
    assert_eq!(forward.attempts, 20);
    assert_eq!(forward.last_status, Some(500));
    assert_eq!(forward.last_error.as_deref(), Some("HTTP 500"));
    assert_eq!(
        forward.next_attempt_at.as_deref(),
        Some("2026-11-30T08:00:00.000000Z")
    );
    assert_eq!(forward.delivered_at, None);
    let delivered = list(EventFilter {
        forward: Some(ForwardStatus::Delivered),
        source: Some(source("acme")),
        ..Default::default()
    });
    assert_eq!(ids(&delivered), ["a3"]);
    assert_eq!(
        delivered[0]
            .forward
            .as_ref()
            .unwrap()
            .delivered_at
            .as_deref(),
        Some("2026-11-30T08:00:01.000000Z")
    );
    assert!(
        list(EventFilter {
            forward: Some(ForwardStatus::Pending),
            ..Default::default()
        })
        .is_empty()
    );
}

async fn walking_the_cursor_visits_each_event_once_while_new_ones_arrive(db: &TestDb) {
    let app = db.app();
    for n in 0..12 {
        deliver(&app, "acme", &format!("old-{n}"), "t", "x").await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<Cursor> = None;
    let mut arrivals = 0;
    loop {
        let rows = db
            .store
            .list_events(&EventFilter::default(), cursor.as_ref(), 5 + 1)
            .unwrap();
        let (page, next) = hooklatch::read::page(rows, 5, |e| e.cursor());
        seen.extend(page.iter().map(|e| e.event_id.clone()));
        // New events between pages must not shift what the next page shows.
        deliver(&app, "acme", &format!("new-{arrivals}"), "t", "x").await;
        arrivals += 1;
        match next {
            Some(text) => cursor = Some(Cursor::decode(&text).unwrap()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..12).rev().map(|n| format!("old-{n}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(arrivals, 3);
}

async fn conversion_list_filters_and_exact_summary(db: &TestDb) {
    let app = db.app();
    for (id, commission, currency) in [
        ("s1", "0.10", "usd"),
        ("s2", "0.20", "usd"),
        ("s3", "0.30", "usd"),
        ("s4", "5", "eur"),
    ] {
        let body = sale(id, commission).replace(
            r#""tracking_id""#,
            &format!(r#""currency":"{currency}","tracking_id""#),
        );
        let reply = post(&app, "/webhooks/refersion", &[], &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let store = &db.store;
    let all = store
        .list_conversions(&ConversionFilter::default(), None, 50)
        .unwrap();
    let orders: Vec<_> = all.iter().map(|c| c.order_id.as_deref().unwrap()).collect();
    assert_eq!(orders, ["ORDER_s4", "ORDER_s3", "ORDER_s2", "ORDER_s1"]);
    let s1 = &all[3];
    assert_eq!(s1.event_id, "s1");
    assert_eq!(s1.source, "refersion");
    assert_eq!(s1.commission_amount, "0.10");
    assert_eq!(s1.sale_amount, "75.00");
    assert_eq!(s1.currency.as_deref(), Some("USD"));
    assert_eq!(s1.tracking_id.as_deref(), Some("YOyqC7"));
    assert_eq!(s1.external_conversion_id, None, "a seed-style sale");
    assert_eq!(s1.updated_at, s1.created_at);
    assert_eq!(
        store.conversion_by_id(s1.conversion_id).unwrap().as_ref(),
        Some(s1)
    );
    assert_eq!(store.conversion_by_id(-1).unwrap(), None);

    let usd = store
        .list_conversions(
            &ConversionFilter {
                currency: Some("USD".into()),
                ..Default::default()
            },
            None,
            2,
        )
        .unwrap();
    assert_eq!(usd.len(), 2);
    let rest = store
        .list_conversions(
            &ConversionFilter {
                currency: Some("USD".into()),
                ..Default::default()
            },
            Some(&usd[1].cursor()),
            50,
        )
        .unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].event_id, "s1");
    let by_order = store
        .list_conversions(
            &ConversionFilter {
                order_id: Some("ORDER_s2".into()),
                ..Default::default()
            },
            None,
            50,
        )
        .unwrap();
    assert_eq!(by_order.len(), 1);
    let since = Timestamp::parse(&all[1].created_at, "since").unwrap();
    let newest = store
        .list_conversions(
            &ConversionFilter {
                since: Some(since),
                ..Default::default()
            },
            None,
            50,
        )
        .unwrap();
    assert_eq!(newest.len(), 2);

    let summary = serde_json::to_value(store.conversion_summary().unwrap()).unwrap();
    assert_eq!(
        summary,
        json!([
            {"status": null, "currency": "EUR", "count": 1, "sale_amount": "75.00", "commission_amount": "5"},
            {"status": null, "currency": "USD", "count": 3, "sale_amount": "225.00", "commission_amount": "0.60"},
        ])
    );
}

async fn source_stats_count_deliveries_duplicates_and_conflicts(db: &TestDb) {
    let app = db.app();
    assert!(db.store.source_stats().unwrap().is_empty());
    deliver(&app, "acme", "1", "t", "x").await;
    deliver(&app, "acme", "1", "t", "x").await;
    deliver(&app, "acme", "1", "t", "x").await;
    deliver(&app, "acme", "2", "t", "x").await;
    deliver(&app, "acme", "2", "t", "other").await;
    deliver(&app, "beta", "1", "t", "x").await;
    let stats = db.store.source_stats().unwrap();
    let latest = db
        .store
        .event(&source("acme"), &EventId::parse("2", "id").unwrap())
        .unwrap()
        .unwrap()
        .last_seen_at;
    let value = serde_json::to_value(&stats).unwrap();
    assert_eq!(
        value[0],
        json!({"source": "acme", "events": 2, "deliveries": 5, "duplicates": 3, "conflicts": 1, "last_seen_at": latest})
    );
    assert_eq!(value[1]["source"], "beta");
    assert_eq!(value[1]["events"], 1);
    assert_eq!(value[1]["duplicates"], 0);
}

async fn export_walks_oldest_first_with_payloads(db: &TestDb) {
    let app = db.app();
    for n in 0..5 {
        deliver(
            &app,
            if n % 2 == 0 { "acme" } else { "beta" },
            &n.to_string(),
            "t",
            "x",
        )
        .await;
    }
    let first = db
        .store
        .export_events(&ExportFilter::default(), None, 3)
        .unwrap();
    let rest = db
        .store
        .export_events(&ExportFilter::default(), Some(&first[2].cursor()), 3)
        .unwrap();
    let order: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(|e| e.event_id.as_str())
        .collect();
    assert_eq!(order, ["0", "1", "2", "3", "4"]);
    let line = serde_json::to_value(&first[0]).unwrap();
    assert_eq!(line["source"], "acme");
    assert_eq!(line["event_id"], "0");
    assert_eq!(line["event_type"], "t");
    assert_eq!(line["payload"], json!({"id": "0", "type": "t", "n": "x"}));
    assert_eq!(line["delivery_count"], 1);
    assert!(line.get("webhook_event_id").is_none());
    let acme = db
        .store
        .export_events(
            &ExportFilter {
                source: Some(source("acme")),
                ..Default::default()
            },
            None,
            50,
        )
        .unwrap();
    assert_eq!(acme.len(), 3);
}

async fn prune_clears_payloads_and_a_retry_is_still_a_duplicate(db: &TestDb) {
    let app = db.app();
    deliver(&app, "acme", "old", "t", "x").await;
    deliver(&app, "acme", "old", "t", "changed").await; // a conflict, kept with its payload
    let cutoff = Timestamp::ago(std::time::Duration::ZERO);
    let store = &db.store;
    // Nothing is older than an hour ago.
    let hour = Timestamp::ago(std::time::Duration::from_secs(3600));
    assert_eq!(store.prune_payloads(&hour, false).unwrap().events, 0);
    let dry = store.prune_payloads(&cutoff, true).unwrap();
    assert_eq!((dry.events, dry.conflicts), (1, 1));
    let (src, id) = (source("acme"), EventId::parse("old", "id").unwrap());
    assert!(store.event(&src, &id).unwrap().unwrap().payload.is_some());
    deliver(&app, "acme", "fresh", "t", "x").await;

    let pruned = store.prune_payloads(&cutoff, false).unwrap();
    assert_eq!((pruned.events, pruned.conflicts), (1, 1));
    let event = store.event(&src, &id).unwrap().unwrap();
    assert_eq!(event.payload, None);
    assert_eq!(event.delivery_count, 2);
    assert_eq!(event.conflict_count, 1);
    assert_eq!(event.fingerprint.len(), 64, "the fingerprint stays");
    assert_eq!(store.conflicts(&src, &id).unwrap()[0].payload, None);
    let fresh = EventId::parse("fresh", "id").unwrap();
    assert!(
        store
            .event(&src, &fresh)
            .unwrap()
            .unwrap()
            .payload
            .is_some()
    );
    assert_eq!(store.prune_payloads(&cutoff, false).unwrap().events, 0);

    let retry = post(
        &app,
        "/webhooks/acme",
        &[],
        r#"{"id":"old","type":"t","n":"x"}"#,
    )
    .await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{retry:?}");
    assert_eq!(retry.body["status"], "accepted");
    assert_eq!(store.event(&src, &id).unwrap().unwrap().delivery_count, 3);
}

async fn admin_paths_are_404_while_the_admin_side_is_off(db: &TestDb) {
    let app = db.app();
    for path in [
        "/admin",
        "/admin/",
        "/admin/api/events",
        "/admin/api/stats",
        "/admin/api/nothing",
        "/admin/login",
    ] {
        for token in [None, Some(ADMIN_TOKEN)] {
            let reply = admin_get(&app, path, token).await;
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(reply.body["error"], "not_found");
        }
    }
    let post = request(
        &app,
        warp::test::request()
            .method("POST")
            .path("/admin/login")
            .body("token=x"),
    )
    .await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);
}

async fn the_api_answers_401_to_anything_without_the_token(db: &TestDb) {
    let app = db.admin_app();
    deliver(&app, "acme", "known", "t", "x").await;
    let wrong = "test-admin-token-0123456788";
    let mut bodies = Vec::new();
    // Fewer than 10 wrong tokens in all: the 11th would be a 429 (SPEC §5.1).
    let wrongs = [Some(wrong), Some(""), Some("test-admin-token")];
    for (n, path) in [
        "/admin/api/events",
        "/admin/api/events/acme/known",
        "/admin/api/events/acme/unknown",
        "/admin/api/nothing/here",
        "/admin/api/events?limit=99999",
    ]
    .into_iter()
    .enumerate()
    {
        for token in [None, wrongs[n % 3]] {
            let reply = admin_get(&app, path, token).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
            assert_eq!(reply.body["error"], "unauthorized");
            bodies.push(reply.body.to_string());
        }
        let basic = request(
            &app,
            warp::test::request()
                .path(path)
                .header("authorization", format!("Basic {ADMIN_TOKEN}")),
        )
        .await;
        assert_eq!(basic.status, StatusCode::UNAUTHORIZED);
        bodies.push(basic.body.to_string());
    }
    bodies.dedup();
    assert_eq!(
        bodies.len(),
        1,
        "every refusal is the same answer: {bodies:?}"
    );
    let ok = admin_get(&app, "/admin/api/events", Some(ADMIN_TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK);
    let lower = request(
        &app,
        warp::test::request()
            .path("/admin/api/stats")
            .header("authorization", format!("bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(
        lower.status,
        StatusCode::OK,
        "the scheme is case-insensitive"
    );
    let unknown = admin_get(&app, "/admin/api/nothing", Some(ADMIN_TOKEN)).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let delete = request(
        &app,
        warp::test::request()
            .method("DELETE")
            .path("/admin/api/events")
            .header("authorization", format!("Bearer {ADMIN_TOKEN}")),
    )
    .await;
    assert_eq!(delete.status, StatusCode::METHOD_NOT_ALLOWED);
}

async fn api_events_page_filter_and_refuse_bad_parameters(db: &TestDb) {
    let app = db.admin_app();
    for n in 0..5 {
        deliver(&app, "acme", &format!("e{n}"), "t", "x").await;
    }
    deliver(&app, "beta", "b", "u", "x").await;
    let get = |path: String| {
        let app = app.clone();
        async move { admin_get(&app, &path, Some(ADMIN_TOKEN)).await }
    };
    let first = get("/admin/api/events?source=acme&limit=2".into()).await;
    assert_eq!(first.status, StatusCode::OK, "{first:?}");
    let items = first.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let item = &items[0];
    let keys: Vec<&str> = item
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "webhook_event_id",
        "source",
        "event_id",
        "event_type",
        "conversion_id",
        "delivery_count",
        "conflict_count",
        "first_seen_at",
        "last_seen_at",
        "forward",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(item["event_id"], "e4");
    assert_eq!(item["forward"], Value::Null);
    let mut seen: Vec<String> = items
        .iter()
        .map(|i| i["event_id"].as_str().unwrap().to_owned())
        .collect();
    let mut cursor = first.body["next_cursor"].as_str().map(String::from);
    while let Some(c) = cursor {
        let page = get(format!("/admin/api/events?source=acme&limit=2&cursor={c}")).await;
        assert_eq!(page.status, StatusCode::OK);
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["event_id"].as_str().unwrap().to_owned()),
        );
        cursor = page.body["next_cursor"].as_str().map(String::from);
    }
    assert_eq!(seen, ["e4", "e3", "e2", "e1", "e0"]);
    let typed = get("/admin/api/events?event_type=u".into()).await;
    assert_eq!(typed.body["items"][0]["event_id"], "b");
    assert_eq!(typed.body["next_cursor"], Value::Null);

    for (query, parameter) in [
        ("limit=501", "limit"),
        ("limit=abc", "limit"),
        ("since=last-week", "since"),
        ("until=2026-02-30T00:00:00Z", "until"),
        ("forward=maybe", "forward"),
        ("duplicated=sure", "duplicated"),
        ("cursor=not-a-cursor", "cursor"),
        ("source=UPPER", "source"),
        ("sort=asc", "sort"),
    ] {
        let reply = get(format!("/admin/api/events?{query}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(reply.body["error"], "invalid_filter");
        assert_eq!(reply.body["parameter"], parameter, "{query}");
    }
    let bad = get("/admin/api/conversions?currency=usd&limit=0".into()).await;
    assert_eq!(bad.body["parameter"], "limit");
    let extra = get("/admin/api/stats?x=1".into()).await;
    assert_eq!(extra.status, StatusCode::BAD_REQUEST);
}

async fn api_event_detail_has_payload_conflicts_and_conversion(db: &TestDb) {
    let app = db.admin_app();
    let body = sale("odd/id with space", "0.10");
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], &body).await.status,
        StatusCode::OK
    );
    let changed = sale("odd/id with space", "0.20");
    post(&app, "/webhooks/refersion", &[], &changed).await;
    post(&app, "/webhooks/refersion", &[], &body).await;
    let path = "/admin/api/events/refersion/odd%2Fid%20with%20space";
    let reply = admin_get(&app, path, Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    let detail = &reply.body;
    assert_eq!(detail["event_id"], "odd/id with space");
    assert_eq!(detail["delivery_count"], 3);
    assert_eq!(detail["conflict_count"], 1);
    assert_eq!(
        detail["payload"],
        serde_json::from_str::<Value>(&body).unwrap()
    );
    assert_eq!(detail["fingerprint"].as_str().unwrap().len(), 64);
    let conflicts = detail["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        conflicts[0]["payload"],
        serde_json::from_str::<Value>(&changed).unwrap()
    );
    assert!(conflicts[0]["received_at"].as_str().unwrap().ends_with('Z'));
    assert_ne!(conflicts[0]["fingerprint"], detail["fingerprint"]);
    let conversion = &detail["conversion"];
    assert_eq!(conversion["conversion_id"], detail["conversion_id"]);
    assert_eq!(conversion["commission_amount"], "0.10");
    assert_eq!(conversion["event_id"], "odd/id with space");

    for missing in [
        "/admin/api/events/refersion/nope",
        "/admin/api/events/Not-A-Source/x",
        "/admin/api/events/refersion/%FF",
    ] {
        let reply = admin_get(&app, missing, Some(ADMIN_TOKEN)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{missing}");
    }

    // Pruned: the payloads become null, everything else stays.
    db.store
        .prune_payloads(&Timestamp::ago(std::time::Duration::ZERO), false)
        .unwrap();
    let pruned = admin_get(&app, path, Some(ADMIN_TOKEN)).await;
    assert_eq!(pruned.body["payload"], Value::Null);
    assert_eq!(pruned.body["conflicts"][0]["payload"], Value::Null);
    assert_eq!(pruned.body["fingerprint"], detail["fingerprint"]);
}

async fn api_conversions_summary_and_stats(db: &TestDb) {
    let app = db.admin_app();
    for (id, commission) in [("c1", "0.10"), ("c2", "0.20"), ("c3", "0.30")] {
        post(&app, "/webhooks/refersion", &[], &sale(id, commission)).await;
    }
    let get = |path: &'static str| {
        let app = app.clone();
        async move { admin_get(&app, path, Some(ADMIN_TOKEN)).await }
    };
    let list = get("/admin/api/conversions?limit=2").await;
    assert_eq!(list.status, StatusCode::OK);
    let first = &list.body["items"][0];
    assert_eq!(first["event_id"], "c3");
    assert_eq!(first["commission_amount"], "0.30");
    assert_eq!(first["sale_amount"], "75.00");
    assert_eq!(first["external_conversion_id"], Value::Null);
    assert_eq!(first["order_id"], "ORDER_c3");
    for key in [
        "status",
        "affiliate_id",
        "affiliate_code",
        "updated_at",
        "created_at",
        "tracking_id",
        "currency",
        "source",
        "conversion_id",
    ] {
        assert!(first.get(key).is_some(), "{key}");
    }
    assert!(list.body["next_cursor"].is_string());
    let by_order = get("/admin/api/conversions?order_id=ORDER_c1").await;
    assert_eq!(by_order.body["items"].as_array().unwrap().len(), 1);

    let summary = get("/admin/api/conversions/summary").await;
    assert_eq!(
        summary.body,
        json!({"groups": [{"status": null, "currency": null, "count": 3, "sale_amount": "225.00", "commission_amount": "0.60"}]})
    );
    post(&app, "/webhooks/refersion", &[], &sale("c1", "0.10")).await;
    let stats = get("/admin/api/stats").await;
    let refersion = &stats.body["sources"][0];
    assert_eq!(refersion["source"], "refersion");
    assert_eq!(refersion["events"], 3);
    assert_eq!(refersion["deliveries"], 4);
    assert_eq!(refersion["duplicates"], 1);
    assert_eq!(refersion["conflicts"], 0);
    assert!(refersion["last_seen_at"].as_str().unwrap().ends_with('Z'));
}

async fn api_rejections_keep_refusals_without_bodies_or_secrets(db: &TestDb) {
    use hooklatch::config::SourceSettings;
    use hooklatch::sources::Preset;
    let mut config = db.config();
    config.sources.insert(
        "shop",
        SourceSettings::new(Preset::Shopify, vec!["very-secret-signing-key".into()]),
    );
    let app = db.admin_app_with(&config);
    let secret_body = r#"{"id":"top-secret-body-value"}"#;
    let forged = post(
        &app,
        "/webhooks/shop",
        &[
            (
                "X-Shopify-Hmac-Sha256",
                "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
            ),
            ("X-Shopify-Event-Id", "evt-hdr"),
        ],
        secret_body,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    let bad = post(
        &app,
        "/webhooks/refersion",
        &[],
        r#"{"event_type":"sale","event_id":"x"}"#,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let not_found = post(&app, "/webhooks/BAD", &[], "{}").await;
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);

    let reply = admin_get(&app, "/admin/api/rejections", Some(ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK);
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(
        items.len(),
        2,
        "routing errors are not refused deliveries: {items:?}"
    );
    assert_eq!(items[0]["source"], "refersion");
    assert_eq!(items[0]["status"], 400);
    assert_eq!(items[0]["error"], "invalid_payload");
    assert!(items[0]["reason"].as_str().unwrap().contains("order_id"));
    assert_eq!(
        items[0]["event_id"], "x",
        "an invalid sale under a readable id names the event"
    );
    assert_eq!(items[1]["source"], "shop");
    assert_eq!(items[1]["status"], 401);
    assert_eq!(items[1]["error"], "invalid_signature");
    assert_eq!(items[1]["reason"], "no_match");
    assert_eq!(items[1]["event_id"], Value::Null);
    assert!(items[1]["at"].as_str().unwrap().ends_with('Z'));
    let text = reply.body.to_string();
    for leaked in [
        "top-secret-body-value",
        "very-secret-signing-key",
        "QUFBQUFB",
        "evt-hdr",
    ] {
        assert!(!text.contains(leaked), "{leaked} in {text}");
    }
}

async fn payload_retention_pass_prunes_what_is_older_than_the_retention(db: &TestDb) {
    use hooklatch::cli::prune::prune_once;
    use std::time::Duration;
    let app = db.app();
    deliver(&app, "acme", "1", "t", "x").await;
    let kept = prune_once(db.store.clone(), Duration::from_secs(90 * 86_400))
        .await
        .unwrap();
    assert_eq!(kept.events, 0);
    let pruned = prune_once(db.store.clone(), Duration::ZERO).await.unwrap();
    assert_eq!(pruned.events, 1);
    let event = db
        .store
        .event(&source("acme"), &EventId::parse("1", "id").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(event.payload, None);
}

/// A console request through the routes: status, headers and the HTML body.
async fn console(
    app: &Arc<App>,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
    extra: &[(&str, &str)],
) -> (StatusCode, warp::http::HeaderMap, String) {
    let mut req = warp::test::request()
        .method(method)
        .path(path)
        .header("host", "hooklatch.test");
    if let Some(cookie) = cookie {
        req = req.header("cookie", cookie);
    }
    for (name, value) in extra {
        req = req.header(*name, *value);
    }
    if let Some(form) = form {
        req = req
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
    }
    let response = req.reply(&hooklatch::routes(app.clone())).await;
    (
        response.status(),
        response.headers().clone(),
        String::from_utf8_lossy(response.body()).into_owned(),
    )
}

/// Signs in through the login form; the session cookie as a `Cookie` header value.
async fn sign_in(app: &Arc<App>) -> String {
    let form = format!("token={ADMIN_TOKEN}");
    let (_, headers, _) = console(app, "POST", "/admin/login", None, Some(&form), &[]).await;
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    set_cookie.split(';').next().unwrap().to_owned()
}

fn csrf_of(html: &str) -> String {
    let start =
        html.find(r#"name="csrf" value=""#).expect("a CSRF field") + r#"name="csrf" value=""#.len();
    html[start..].split('"').next().unwrap().to_owned()
}

#[test]
fn console_sign_in_session_cookie_csrf_and_sign_out() {
    let db = TestDb::fresh(common::Backend::Sqlite, "console_sign_in").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = db.admin_app();
        // Signed out, every page leads to the login form; the token never goes in a URL.
        let (status, headers, _) = console(&app, "GET", "/admin/", None, None, &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(headers["location"], "/admin/login");
        let (status, headers, html) = console(&app, "GET", "/admin/login", None, None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            headers["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("default-src 'none'")
        );
        assert!(html.contains(r#"method="post" action="/admin/login""#));

        let (status, headers, html) = console(
            &app,
            "POST",
            "/admin/login",
            None,
            Some("token=wrong-token-1234567"),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(headers.get("set-cookie").is_none());
        assert!(html.contains("not the admin token"));

        let cross = [
            ("origin", "https://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ];
        let form = format!("token={ADMIN_TOKEN}");
        let (status, headers, _) =
            console(&app, "POST", "/admin/login", None, Some(&form), &cross).await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "a cross-site sign-in is refused"
        );
        assert!(headers.get("set-cookie").is_none());

        let same = [
            ("origin", "http://hooklatch.test"),
            ("sec-fetch-site", "same-origin"),
        ];
        let (status, headers, _) =
            console(&app, "POST", "/admin/login", None, Some(&form), &same).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let set_cookie = headers["set-cookie"].to_str().unwrap().to_owned();
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
            assert!(set_cookie.contains(flag), "{set_cookie}");
        }
        assert!(!set_cookie.contains("Secure"), "plain HTTP on loopback");
        let proxied = [("x-forwarded-proto", "https")];
        let (_, behind_tls, _) =
            console(&app, "POST", "/admin/login", None, Some(&form), &proxied).await;
        assert!(
            behind_tls["set-cookie"]
                .to_str()
                .unwrap()
                .contains("; Secure")
        );
        let cookie = set_cookie.split(';').next().unwrap().to_owned();

        let (status, _, html) = console(&app, "GET", "/admin/", Some(&cookie), None, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            html.contains("No deliveries yet"),
            "an empty store says what to do"
        );
        assert!(html.contains("https://hooklatch.test/webhooks/"));
        // The cookie does not open the API: scripts use the bearer token.
        let (status, _, _) =
            console(&app, "GET", "/admin/api/events", Some(&cookie), None, &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        let csrf = csrf_of(&html);
        let (status, _, _) = console(
            &app,
            "POST",
            "/admin/logout",
            Some(&cookie),
            Some("csrf=forged"),
            &same,
        )
        .await;
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "sign-out needs the CSRF token"
        );
        let (status, headers, _) = console(
            &app,
            "POST",
            "/admin/logout",
            Some(&cookie),
            Some(&format!("csrf={csrf}")),
            &same,
        )
        .await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(
            headers["set-cookie"]
                .to_str()
                .unwrap()
                .contains("Max-Age=0")
        );
        let (status, headers, _) =
            console(&app, "GET", "/admin/events", Some(&cookie), None, &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "the session ended");
        assert_eq!(headers["location"], "/admin/login");
    });
}

#[test]
fn console_pages_render_events_detail_conversions_and_rejections() {
    let db = TestDb::fresh(common::Backend::Sqlite, "console_pages").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = db.admin_app();
        for (id, commission) in [("c1", "0.10"), ("c2", "0.20"), ("c3", "0.30")] {
            post(&app, "/webhooks/refersion", &[], &sale(id, commission)).await;
        }
        post(&app, "/webhooks/refersion", &[], &sale("c1", "0.15")).await;
        post(
            &app,
            "/webhooks/refersion",
            &[],
            "{\"event_type\":\"sale\"}",
        )
        .await;
        let cookie = sign_in(&app).await;
        let get = |path: &str| {
            let (app, cookie, path) = (app.clone(), cookie.clone(), path.to_owned());
            async move { console(&app, "GET", &path, Some(&cookie), None, &[]).await }
        };
        let (status, _, html) = get("/admin/").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"id="sources""#) && html.contains("refersion"));
        let (_, _, html) = get("/admin/events?limit=10&source=refersion&conflicted=true").await;
        assert!(html.contains("/admin/events/refersion/c1"), "{html}");
        assert!(!html.contains("/admin/events/refersion/c2"));
        let (status, _, html) = get("/admin/events?since=nope").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(html.contains("since"));
        let (status, _, html) = get("/admin/events/refersion/c1").await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(r#"id="payload""#));
        assert!(
            html.contains("&quot;commission_amount&quot;: 0.10"),
            "pretty-printed payload"
        );
        assert!(html.contains("0.15"), "the conflicting delivery is shown");
        assert!(html.contains(r#"id="conversion""#));
        let (status, _, _) = get("/admin/events/refersion/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (_, _, html) = get("/admin/conversions").await;
        assert!(
            html.contains(r#"id="summary""#) && html.contains("0.60"),
            "{html}"
        );
        let (_, _, html) = get("/admin/rejections").await;
        assert!(html.contains("invalid_payload"));
        let (status, headers, css) = get("/admin/assets/console.css").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/css")
        );
        assert!(css.len() < 8 * 1024, "a few kilobytes of CSS");
        let (status, _, _) = get("/admin/forwarding").await;
        assert_eq!(status, StatusCode::OK);
    });
}

async fn the_api_and_the_console_queue_a_forward_again_behind_token_and_csrf(db: &TestDb) {
    let config = db.config_forwarding_shop();
    let app = db.admin_app_with(&config);
    deliver(&app, "shop", "f1", "t", "x").await;
    deliver(&app, "acme", "n1", "t", "x").await;
    execute_sql(
        &db.url,
        "UPDATE forward_outbox SET state = 'failed', attempts = 20, last_status = 500",
    );
    let failed = EventFilter {
        forward: Some(ForwardStatus::Failed),
        ..Default::default()
    };
    assert_eq!(
        ids(&db.store.list_events(&failed, None, 50).unwrap()),
        ["f1"]
    );

    let post_api = |path: &'static str, token: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut req = warp::test::request().method("POST").path(path);
            if let Some(token) = token {
                req = req.header("authorization", format!("Bearer {token}"));
            }
            request(&app, req).await
        }
    };
    let refused = post_api("/admin/api/events/shop/f1/forward", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let not_forwarding = post_api("/admin/api/events/acme/n1/forward", Some(ADMIN_TOKEN)).await;
    assert_eq!(not_forwarding.status, StatusCode::CONFLICT);
    let get = admin_get(&app, "/admin/api/events/shop/f1/forward", Some(ADMIN_TOKEN)).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
    let queued = post_api("/admin/api/events/shop/f1/forward", Some(ADMIN_TOKEN)).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{queued:?}");
    assert_eq!(queued.body["status"], "queued");
    let pending = EventFilter {
        forward: Some(ForwardStatus::Pending),
        ..Default::default()
    };
    assert_eq!(
        ids(&db.store.list_events(&pending, None, 50).unwrap()),
        ["f1"]
    );

    // The console's button does the same, with the session's CSRF token.
    execute_sql(&db.url, "UPDATE forward_outbox SET state = 'failed'");
    let cookie = sign_in(&app).await;
    let (status, _, html) =
        console(&app, "GET", "/admin/forwarding", Some(&cookie), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains(r#"action="/admin/events/shop/f1/forward""#),
        "{html}"
    );
    let csrf = csrf_of(&html);
    let (status, _, _) = console(
        &app,
        "POST",
        "/admin/events/shop/f1/forward",
        Some(&cookie),
        Some("csrf=nope"),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        ids(&db.store.list_events(&failed, None, 50).unwrap()),
        ["f1"]
    );
    let (status, headers, _) = console(
        &app,
        "POST",
        "/admin/events/shop/f1/forward",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/admin/events/shop/f1");
    assert_eq!(
        ids(&db.store.list_events(&pending, None, 50).unwrap()),
        ["f1"]
    );
    let (_, _, page) = console(
        &app,
        "GET",
        "/admin/events/shop/f1",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert!(page.contains("Forward again"));
}

/// Issue 17 item 13 (SPEC §5.2): an event id is the sender's choice; printed raw, ESC,
/// BEL, DEL or CSI (U+009B) would drive the operator's terminal.
async fn cli_tables_escape_control_characters_of_stored_ids(db: &TestDb) {
    let app = db.app();
    let hostile = "\u{1b}]0;owned\u{7}\u{1b}[2Jx\u{7f}\u{9b}31m\u{202e}gnp.exe";
    let body = json!({"id": hostile, "type": "order.\u{1b}[31mred", "note": "\u{9b}"}).to_string();
    let reply = post(&app, "/webhooks/acme", &[], &body).await;
    assert!(reply.status.is_success(), "{reply:?}");
    let store = db.store.clone();
    let (list, show) = hooklatch::store::run_blocking(move || {
        use hooklatch::cli::events::{EventsCommand, ListArgs, ShowArgs, run};
        let mut list = Vec::new();
        let args = ListArgs {
            source: None,
            since: None,
            limit: 10,
            json: false,
        };
        run(store.as_ref(), &EventsCommand::List(args), &mut list).unwrap();
        let mut show = Vec::new();
        let args = ShowArgs {
            source: "acme".into(),
            event_id: hostile.into(),
            json: false,
        };
        run(store.as_ref(), &EventsCommand::Show(args), &mut show).unwrap();
        Ok((
            String::from_utf8(list).unwrap(),
            String::from_utf8(show).unwrap(),
        ))
    })
    .await
    .unwrap();
    for (what, text) in [("list", &list), ("show", &show)] {
        let raw: Vec<char> = text
            .chars()
            .filter(|c| (c.is_control() && *c != '\n') || *c == '\u{202e}')
            .collect();
        assert!(raw.is_empty(), "{what} prints {raw:?} raw:\n{text}");
        assert!(text.contains(r"\u{1b}]0;owned\u{7}"), "{what}:\n{text}");
    }
    assert!(list.contains(r"order.\u{1b}[31mred"), "{list}");
    assert!(
        show.contains(r"\u{9b}"),
        "the payload's C1 control too:\n{show}"
    );
}

/// Issue 17 item 12 (SPEC §7): an unbounded amount made SQLite's summary panic for good
/// while PostgreSQL answered. At most 18 integer digits, and sums equal on both stores.
async fn amounts_have_at_most_eighteen_integer_digits_and_sum_exactly(db: &TestDb) {
    let app = db.admin_app();
    let body = |id: &str, sale: &str, commission: &str| {
        format!(
            r#"{{"event_type":"sale","event_id":"{id}","order_id":"O{id}","commission_amount":{commission},"sale_amount":{sale},"tracking_id":"t"}}"#
        )
    };
    for (id, sale, commission, field) in [
        ("big1", "1234567890123456789", "1.00", "sale_amount"),
        (
            "big2",
            "\"1000000000000000000.000001\"",
            "1.00",
            "sale_amount",
        ),
        ("big3", "10.00", "1e18", "commission_amount"),
        (
            "big4",
            "10.00",
            "99999999999999999999999999999999",
            "commission_amount",
        ),
    ] {
        let reply = post(
            &app,
            "/webhooks/refersion",
            &[],
            &body(id, sale, commission),
        )
        .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{id}: {reply:?}");
        assert_eq!(reply.body["field"], field, "{id}: {reply:?}");
    }
    assert_eq!(db.totals().events, 0, "nothing stored");
    for id in ["m1", "m2", "m3"] {
        let largest = body(id, "999999999999999999.999999", "\"999999999999999999.5\"");
        let reply = post(&app, "/webhooks/refersion", &[], &largest).await;
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let summary = admin_get(&app, "/admin/api/conversions/summary", Some(ADMIN_TOKEN)).await;
    assert_eq!(summary.status, StatusCode::OK, "{summary:?}");
    assert_eq!(
        summary.body,
        json!({"groups": [{"status": null, "currency": null, "count": 3,
            "sale_amount": "2999999999999999999.999997",
            "commission_amount": "2999999999999999998.5"}]})
    );
}

/// Issue 17 item 11 (SPEC §7): a duplicate-key refusal kept the whole key, up to the
/// body limit, as its reason; 100 of them held about 50 MB.
async fn a_refusal_reason_is_bounded_and_never_quotes_the_body(db: &TestDb) {
    let app = db.admin_app();
    let key = format!("KeyFromTheBody{}", "k".repeat(20_000));
    for body in [
        format!(r#"{{"id":"d1","{key}":1,"{key}":2}}"#),
        r#"{"id":"d2","nested":{"SecretKeyName":1,"SecretKeyName":2}}"#.to_owned(),
    ] {
        let reply = post(&app, "/webhooks/acme", &[], &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply:?}");
        let message = reply.body["message"].as_str().unwrap_or_default();
        assert!(message.contains("duplicate key"), "{message}");
        assert!(!message.contains("KeyFromTheBody") && !message.contains("SecretKeyName"));
    }
    let reply = admin_get(&app, "/admin/api/rejections", Some(ADMIN_TOKEN)).await;
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    for item in items {
        let reason = item["reason"].as_str().unwrap();
        assert!(reason.chars().count() <= 200, "{} chars", reason.len());
        assert!(reason.contains("duplicate key"), "{reason}");
        assert!(
            !reason.contains("KeyFromTheBody") && !reason.contains("SecretKeyName"),
            "{reason}"
        );
    }
}
async fn the_console_pauses_resumes_and_replays_a_source_and_shows_the_attempts(db: &TestDb) {
    use hooklatch::model::outbox::{AttemptOutcome, AttemptReport};
    let config = db.config_forwarding_shop();
    let app = db.admin_app_with(&config);
    deliver(&app, "shop", "f1", "t", "x").await;
    let state = || {
        db.store
            .forwarding_sources()
            .unwrap()
            .into_iter()
            .find(|s| s.source == "shop")
            .map(|s| s.state())
    };
    let cookie = sign_in(&app).await;
    let page = |path: &'static str| {
        let (app, cookie) = (app.clone(), cookie.clone());
        async move {
            let (status, _, html) = console(&app, "GET", path, Some(&cookie), None, &[]).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            html
        }
    };
    let html = page("/admin/forwarding").await;
    assert!(
        html.contains(r#"action="/admin/forwarding/shop/pause""#),
        "{html}"
    );
    assert!(html.contains(r#"id="replay""#), "{html}");
    assert!(
        html.contains("http://127.0.0.1:9<"),
        "destination without its path: {html}"
    );
    let csrf = csrf_of(&html);
    let form = |body: String| {
        let (app, cookie) = (app.clone(), cookie.clone());
        async move {
            let (status, headers, _) = console(
                &app,
                "POST",
                if body.contains("source=") {
                    "/admin/forwarding/replay"
                } else if body.contains("resume") {
                    "/admin/forwarding/shop/resume"
                } else {
                    "/admin/forwarding/shop/pause"
                },
                Some(&cookie),
                Some(&body.replace("&resume", "")),
                &[],
            )
            .await;
            (status, headers)
        }
    };
    // A forged token changes nothing.
    let (status, _) = form("csrf=nope".into()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(state(), Some("active"));
    let (status, _) = form(format!("csrf={csrf}")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(state(), Some("paused"));
    assert!(
        page("/admin/forwarding")
            .await
            .contains(r#"action="/admin/forwarding/shop/resume""#)
    );
    let (status, _) = form(format!("csrf={csrf}&resume")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(state(), Some("active"));

    let (status, _) = form("csrf=nope&source=shop&since=2000-01-01T00:00:00Z".to_owned()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, headers) = form(format!(
        "csrf={csrf}&source=shop&since=2000-01-01T00%3A00%3A00Z&until="
    ))
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/admin/forwarding?replayed=1");
    let (_, _, html) = console(
        &app,
        "GET",
        "/admin/forwarding?replayed=1",
        Some(&cookie),
        None,
        &[],
    )
    .await;
    assert!(html.contains("1 events queued again"), "{html}");

    // One attempt recorded: the event page lists it with the app's answer.
    let job = db
        .store
        .claim_forwards("me", std::time::Duration::from_secs(60), 1)
        .unwrap()
        .remove(0);
    let report = AttemptReport {
        response: Some("<b>upstream down</b>".into()),
        ..AttemptReport::of(AttemptOutcome::Failed {
            status: Some(502),
            error: "HTTP 502 Bad Gateway".into(),
            retry_in: Some(std::time::Duration::from_secs(600)),
        })
    };
    db.store
        .record_forward(job.webhook_event_id, "me", &report)
        .unwrap();
    let html = page("/admin/events/shop/f1").await;
    assert!(html.contains(r#"id="forward-history""#), "{html}");
    assert!(html.contains("HTTP 502 Bad Gateway"));
    assert!(
        html.contains("&lt;b&gt;upstream down&lt;/b&gt;"),
        "escaped: {html}"
    );
}

/// Issue 17 item 7 (SPEC §5.1): a session opened on one instance is valid on every
/// instance that shares the store and the token, and after a restart; it is signed with a
/// key from the token, so another token refuses it; it expires 12 h after sign-in.
async fn a_console_session_is_valid_on_every_instance_with_the_token_until_it_expires(db: &TestDb) {
    let a = db.admin_app();
    // Another instance, or this one restarted: nothing of `a`'s memory.
    let b = Arc::new(App::new(db.store.clone(), &db.config()).with_admin_token(ADMIN_TOKEN));
    let cookie = sign_in(&a).await;
    let page = |app: &Arc<App>, cookie: &str| {
        let (app, cookie) = (app.clone(), cookie.to_owned());
        async move { console(&app, "GET", "/admin/", Some(&cookie), None, &[]).await }
    };
    let (status, _, html_b) = page(&b, &cookie).await;
    assert_eq!(status, StatusCode::OK, "a session from A opens B");
    let (_, _, html_a) = page(&a, &cookie).await;
    assert_eq!(
        csrf_of(&html_a),
        csrf_of(&html_b),
        "one CSRF token everywhere"
    );

    let other = Arc::new(
        App::new(db.store.clone(), &db.config()).with_admin_token("another-admin-token-0123456789"),
    );
    let (status, headers, _) = page(&other, &cookie).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a new token signs everyone out"
    );
    assert_eq!(headers["location"], "/admin/login");
    let (name, value) = cookie.split_once('=').unwrap();
    let mut forged = value.to_owned();
    let last = if forged.pop() == Some('A') { 'B' } else { 'A' };
    forged.push(last);
    let issued_later = value.replacen(|c: char| c.is_ascii_digit(), "9", 1);
    for bad in [forged, issued_later, "1.2.3".into(), String::new()] {
        let (status, _, _) = page(&b, &format!("{name}={bad}")).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{bad}");
    }

    let admin = a.admin.as_ref().unwrap();
    let now = hooklatch::model::clock::unix_now();
    let (expired, _) = admin.session_issued_at(now - 12 * 3600 - 1).unwrap();
    let (fresh, _) = admin.session_issued_at(now - 12 * 3600 + 60).unwrap();
    let (status, _, _) = page(&b, &format!("{name}={expired}")).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "12 h after sign-in it has expired"
    );
    let (status, _, _) = page(&b, &format!("{name}={fresh}")).await;
    assert_eq!(status, StatusCode::OK, "a minute before, it has not");

    // Signing out on B, with the CSRF token A rendered, ends the session on B.
    let same = [("origin", "http://hooklatch.test")];
    let form = format!("csrf={}", csrf_of(&html_a));
    let (status, _, _) = console(
        &b,
        "POST",
        "/admin/logout",
        Some(&cookie),
        Some(&form),
        &same,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, _, _) = page(&b, &cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed out");
}

/// Issue 17 item 8 (SPEC §5.1): after 10 wrong tokens from one address within 10
/// minutes, console form and API bearer alike, that address gets 429 with Retry-After,
/// even with the right token; other addresses are not affected.
async fn ten_wrong_tokens_from_one_address_get_429_even_with_the_right_token(db: &TestDb) {
    let app = db.admin_app();
    let api = |ip: &'static str, token: &'static str| {
        let app = app.clone();
        async move {
            let request = warp::test::request()
                .path("/admin/api/stats")
                .remote_addr(format!("{ip}:40000").parse().unwrap())
                .header("authorization", format!("Bearer {token}"));
            request_raw(&app, request).await
        }
    };
    let form = |ip: &'static str, token: &'static str| {
        let app = app.clone();
        async move {
            let request = warp::test::request()
                .method("POST")
                .path("/admin/login")
                .remote_addr(format!("{ip}:40000").parse().unwrap())
                .header("host", "hooklatch.test")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("token={token}"));
            request_raw(&app, request).await
        }
    };
    let wrong = "not-the-admin-token-00000";
    for n in 0..5 {
        assert_eq!(
            api("192.0.2.1", wrong).await.status(),
            StatusCode::UNAUTHORIZED,
            "{n}"
        );
        assert_eq!(
            form("192.0.2.1", wrong).await.status(),
            StatusCode::UNAUTHORIZED,
            "{n}"
        );
    }
    for refused in [
        api("192.0.2.1", ADMIN_TOKEN).await,
        form("192.0.2.1", ADMIN_TOKEN).await,
    ] {
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=600).contains(&retry), "{retry}");
        assert!(refused.headers().get("set-cookie").is_none());
    }
    let json: Value = serde_json::from_slice(api("192.0.2.1", ADMIN_TOKEN).await.body()).unwrap();
    assert_eq!(json["error"], "too_many_attempts");
    assert_eq!(api("192.0.2.2", ADMIN_TOKEN).await.status(), StatusCode::OK);
    assert_eq!(
        form("192.0.2.2", ADMIN_TOKEN).await.status(),
        StatusCode::SEE_OTHER
    );
}

async fn request_raw(
    app: &Arc<App>,
    request: warp::test::RequestBuilder,
) -> warp::http::Response<bytes::Bytes> {
    request.reply(&hooklatch::routes(app.clone())).await
}
