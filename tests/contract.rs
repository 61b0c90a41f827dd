//! The contract suite: every case is written once and runs against SQLite
//! (`sqlite::case`) and PostgreSQL (`postgres::case`). A behaviour that differs between
//! the backends fails here.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use common::{Reply, SEED, TestDb, Totals, conversion_body, post, request, sale};
use hooklatch::config::{Config, OnConflict, SourceSettings};
use hooklatch::model::{EventId, NewConversion, NewEvent, Outcome, Source};
use hooklatch::sources::Preset;
use serde_json::{Value, json};
use warp::http::StatusCode;

contract!(
    seed_example_is_processed_once_then_accepted_as_duplicate,
    amounts_are_stored_exactly,
    same_event_in_other_notation_is_a_duplicate,
    different_payload_is_a_conflict_that_changes_nothing,
    conflict_is_409_when_the_operator_rejects,
    non_sale_events_have_no_conversion,
    invalid_sale_is_400_and_nothing_is_stored,
    invalid_bodies_are_400_with_the_field,
    routing_errors_are_json,
    oversized_and_wrongly_typed_bodies_are_refused,
    event_ids_by_source,
    ids_are_compared_exactly_and_stored_verbatim,
    same_id_in_two_sources_is_two_events,
    store_level_outcomes,
    sixty_four_threads_one_event_one_conversion,
    sixty_four_concurrent_http_deliveries_one_conversion,
    thousand_events_from_thirty_two_clients_over_a_socket,
    signed_sources_verify_before_storing,
    every_preset_accepts_signed_and_refuses_forged_deliveries,
    a_delivery_waiting_on_a_rolled_back_first_becomes_the_first,
    a_delivery_waiting_on_a_committed_first_does_not_insert_again,
    migrations_run_once,
    health_and_readiness,
    a_conversion_delivery_creates_one_conversion,
    approval_after_pending_moves_the_conversion,
    a_late_pending_after_approval_is_stale_and_changes_nothing,
    equal_timestamps_never_move_a_decided_conversion_back_to_pending,
    missing_timestamps_never_move_a_decided_conversion_back_to_pending,
    denial_after_pending_moves_the_conversion,
    a_duplicate_conversion_delivery_answers_the_current_status,
    a_conflicting_redelivery_leaves_the_conversion_unchanged,
    invalid_conversion_fields_are_400_and_nothing_is_stored,
    sixteen_concurrent_topics_of_one_conversion_newest_wins,
    the_seed_sale_is_unchanged_by_the_lifecycle,
    a_stray_conversion_row_is_adopted_not_a_permanent_503,
    every_conflict_is_counted_but_only_the_first_sixteen_are_kept,
);

fn source(name: &str) -> Source {
    Source::parse(name).unwrap()
}

fn id(text: &str) -> EventId {
    EventId::parse(text, "id").unwrap()
}

async fn totals(db: &TestDb) -> Totals {
    db.totals()
}

async fn seed_example_is_processed_once_then_accepted_as_duplicate(db: &TestDb) {
    let app = db.app();
    let first = post(&app, "/webhooks/refersion", &[], SEED).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["status"], "processed");
    assert_eq!(first.body["source"], "refersion");
    assert_eq!(first.body["event_id"], "ref_evt_123456");
    assert!(first.body["webhook_event_id"].is_i64());
    assert!(first.body["conversion_id"].is_i64());
    assert_eq!(first.header("Idempotent-Replayed"), None);

    let again = post(&app, "/webhooks/refersion", &[], SEED).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["status"], "accepted");
    assert_eq!(again.body["message"], "Event already processed");
    assert_eq!(
        again.body["webhook_event_id"],
        first.body["webhook_event_id"]
    );
    assert_eq!(again.body["conversion_id"], first.body["conversion_id"]);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(again.header("X-Idempotency-Conflict"), None);

    let event = db
        .store
        .event(&source("refersion"), &id("ref_evt_123456"))
        .unwrap()
        .unwrap();
    assert_eq!(event.delivery_count, 2);
    assert_eq!(event.conflict_count, 0);
    assert_eq!(
        event.payload.as_deref(),
        Some(SEED),
        "the payload is kept byte for byte"
    );
    assert_eq!(event.event_type.as_deref(), Some("sale"));
    assert_eq!(Some(event.id), first.body["webhook_event_id"].as_i64());
    assert_eq!(event.conversion_id, first.body["conversion_id"].as_i64());
    assert!(event.last_seen_at >= event.first_seen_at);
    for stamp in [&event.first_seen_at, &event.last_seen_at] {
        assert_eq!(stamp.len(), "2026-11-28T21:00:00.123456Z".len(), "{stamp}");
        assert!(
            stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{stamp}"
        );
    }
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1,
            conversions: 1,
            conflicts: 0
        }
    );
}

async fn amounts_are_stored_exactly(db: &TestDb) {
    let app = db.app();
    let body = r#"{"event_type":"sale","event_id":"exact","order_id":1001,"commission_amount":"0.000001","sale_amount":12345678901234567.50,"currency":"usd","tracking_id":"t"}"#;
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], body).await.status,
        StatusCode::OK
    );
    let conversion = db.conversion(&source("refersion"), &id("exact")).unwrap();
    assert_eq!(conversion.order_id.as_deref(), Some("1001"));
    assert_eq!(conversion.commission_amount.to_string(), "0.000001");
    assert_eq!(conversion.sale_amount.to_string(), "12345678901234567.50");
    assert_eq!(conversion.currency.as_deref(), Some("USD"));
    assert_eq!(conversion.tracking_id.as_deref(), Some("t"));

    assert_eq!(
        post(&app, "/webhooks/refersion", &[], SEED).await.status,
        StatusCode::OK
    );
    let seed = db
        .conversion(&source("refersion"), &id("ref_evt_123456"))
        .unwrap();
    assert_eq!(
        seed.commission_amount.to_string(),
        "15.00",
        "15.00 stays 15.00"
    );
    assert_eq!(seed.sale_amount.to_string(), "75.00");
    assert_eq!(seed.order_id.as_deref(), Some("ORDER_TEST_001"));
    assert_eq!(seed.currency, None);
}

async fn same_event_in_other_notation_is_a_duplicate(db: &TestDb) {
    let app = db.app();
    let first = post(&app, "/webhooks/refersion", &[], SEED).await;
    assert_eq!(first.status, StatusCode::OK);
    let reordered = "{ \"tracking_id\": \"YOyqC7\",\n  \"sale_amount\": 75,\n  \"commission_amount\": 15,\n  \"order_id\": \"ORDER_TEST_001\",\n  \"event_id\": \"ref_evt_123456\",\n  \"event_type\": \"sale\" }";
    let again = post(&app, "/webhooks/refersion", &[], reordered).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["status"], "accepted");
    let strings = r#"{"event_type":"sale","event_id":"ref_evt_123456","order_id":"ORDER_TEST_001","commission_amount":"15.0","sale_amount":"7.5e1","tracking_id":"YOyqC7","extra":"ignored"}"#;
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], strings).await.body["status"],
        "accepted"
    );

    let generic = r#"{"id":"evt_9","data":{"b":[1,2],"a":10}}"#;
    assert_eq!(
        post(&app, "/webhooks/acme", &[], generic).await.status,
        StatusCode::OK
    );
    let generic_again = "{\"data\": {\"a\": 10.0, \"b\": [1, 2.00]}, \"id\": \"evt_9\"}";
    assert_eq!(
        post(&app, "/webhooks/acme", &[], generic_again)
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert_eq!(
        totals(db).await,
        Totals {
            events: 2,
            conversions: 1,
            conflicts: 0
        }
    );
}

async fn different_payload_is_a_conflict_that_changes_nothing(db: &TestDb) {
    let app = db.app();
    let first = post(&app, "/webhooks/refersion", &[], &sale("c1", "15.00")).await;
    assert_eq!(first.status, StatusCode::OK);
    let before = db
        .store
        .event(&source("refersion"), &id("c1"))
        .unwrap()
        .unwrap();

    let changed = sale("c1", "16.00");
    let conflict = post(&app, "/webhooks/refersion", &[], &changed).await;
    assert_eq!(conflict.status, StatusCode::ACCEPTED);
    assert_eq!(conflict.body["status"], "conflict");
    assert!(
        conflict.body["message"]
            .as_str()
            .unwrap()
            .contains("different payload")
    );
    assert_eq!(
        conflict.body["webhook_event_id"],
        first.body["webhook_event_id"]
    );
    assert_eq!(conflict.body["conversion_id"], first.body["conversion_id"]);
    assert_eq!(conflict.header("X-Idempotency-Conflict"), Some("true"));
    assert_eq!(conflict.header("Idempotent-Replayed"), Some("true"));

    let after = db
        .store
        .event(&source("refersion"), &id("c1"))
        .unwrap()
        .unwrap();
    assert_eq!(after.payload, before.payload, "the original stands");
    assert_eq!(after.fingerprint, before.fingerprint);
    assert_eq!(after.delivery_count, 2);
    assert_eq!(after.conflict_count, 1);
    let conversion = db.conversion(&source("refersion"), &id("c1")).unwrap();
    assert_eq!(conversion.commission_amount.to_string(), "15.00");

    let kept = db.store.conflicts(&source("refersion"), &id("c1")).unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].payload.as_deref(), Some(changed.as_str()));
    assert_eq!(kept[0].webhook_event_id, before.id);
    assert_ne!(kept[0].fingerprint, before.fingerprint);
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1,
            conversions: 1,
            conflicts: 1
        }
    );

    // The original payload after a conflict is still a plain duplicate.
    let again = post(&app, "/webhooks/refersion", &[], &sale("c1", "15.00")).await;
    assert_eq!(again.body["status"], "accepted");
}

async fn conflict_is_409_when_the_operator_rejects(db: &TestDb) {
    let config = Config {
        on_conflict: OnConflict::Reject,
        ..db.config()
    };
    let app = db.app_with(&config);
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], &sale("r1", "1"))
            .await
            .status,
        StatusCode::OK
    );
    let rejected = post(&app, "/webhooks/refersion", &[], &sale("r1", "2")).await;
    assert_eq!(rejected.status, StatusCode::CONFLICT);
    assert_eq!(rejected.body["status"], "conflict");
    assert_eq!(rejected.header("X-Idempotency-Conflict"), Some("true"));
    assert!(rejected.body["webhook_event_id"].is_i64());
    assert_eq!(
        db.store
            .conflicts(&source("refersion"), &id("r1"))
            .unwrap()
            .len(),
        1
    );
    // Duplicates are still 202 under "reject".
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], &sale("r1", "1"))
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

async fn non_sale_events_have_no_conversion(db: &TestDb) {
    let app = db.app();
    let click = post(
        &app,
        "/webhooks/refersion",
        &[],
        r#"{"event_type":"click","event_id":"k1"}"#,
    )
    .await;
    assert_eq!(click.status, StatusCode::OK);
    assert_eq!(click.body["conversion_id"], Value::Null);
    // A Refersion topic without a conversion object (no status, totals) is only an event.
    let real = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Topic", "AFFILIATE_DETAILS_CHANGE")],
        r#"{"id":987654321,"code":"a3y7","status":"ACTIVE"}"#,
    )
    .await;
    assert_eq!(real.status, StatusCode::OK, "{:?}", real.body);
    assert_eq!(real.body["event_id"], "AFFILIATE_DETAILS_CHANGE:987654321");
    assert_eq!(real.body["conversion_id"], Value::Null);
    assert!(real.body.get("conversion_status").is_none());
    assert!(real.body.get("applied").is_none());
    // The same id under another topic is another event.
    let denied = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Topic", "DENIED_CONVERSION")],
        r#"{"id":987654321}"#,
    )
    .await;
    assert_eq!(denied.status, StatusCode::OK);
    let stored = db
        .store
        .event(
            &source("refersion"),
            &id("AFFILIATE_DETAILS_CHANGE:987654321"),
        )
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.event_type.as_deref(),
        Some("AFFILIATE_DETAILS_CHANGE")
    );
    assert_eq!(stored.conversion_id, None);
    assert_eq!(
        totals(db).await,
        Totals {
            events: 3,
            conversions: 0,
            conflicts: 0
        }
    );
}

async fn invalid_sale_is_400_and_nothing_is_stored(db: &TestDb) {
    let app = db.app();
    let cases = [
        (
            r#"{"event_type":"sale","event_id":"s","commission_amount":1,"sale_amount":2}"#,
            "order_id",
        ),
        (
            r#"{"event_type":"sale","event_id":"s","order_id":"o","commission_amount":-1,"sale_amount":2}"#,
            "commission_amount",
        ),
        (
            r#"{"event_type":"sale","event_id":"s","order_id":"o","commission_amount":1,"sale_amount":"12.3456789"}"#,
            "sale_amount",
        ),
        (
            r#"{"event_type":"sale","event_id":"s","order_id":"o","commission_amount":1,"sale_amount":2,"currency":"dollars"}"#,
            "currency",
        ),
        (
            r#"{"event_type":"sale","event_id":"s","order_id":"o","commission_amount":1,"sale_amount":2,"tracking_id":[]}"#,
            "tracking_id",
        ),
    ];
    for (body, field) in cases {
        let reply = post(&app, "/webhooks/refersion", &[], body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.body["error"], "invalid_payload");
        assert_eq!(reply.body["field"], field, "{body}");
        assert!(reply.body["message"].is_string());
    }
    assert_eq!(totals(db).await, Totals::default());
}

async fn invalid_bodies_are_400_with_the_field(db: &TestDb) {
    let app = db.app();
    let long_id = "x".repeat(256);
    let too_long = format!(r#"{{"event_id":"{long_id}"}}"#);
    let cases: [(&str, &str, &str); 9] = [
        ("/webhooks/refersion", "not json", "body"),
        ("/webhooks/refersion", "[1,2]", "body"),
        (
            "/webhooks/refersion",
            r#"{"event_type":"click"}"#,
            "event_id",
        ),
        ("/webhooks/refersion", r#"{"event_id":""}"#, "event_id"),
        ("/webhooks/refersion", r#"{"event_id":1.5}"#, "event_id"),
        ("/webhooks/refersion", &too_long, "event_id"),
        ("/webhooks/stripe", r#"{"type":"x"}"#, "id"),
        ("/webhooks/acme", r#"{"id":{"nested":1}}"#, "id"),
        ("/webhooks/acme", r#"{"id":"a","id":"b"}"#, "body"),
    ];
    for (path, body, field) in cases {
        let reply = post(&app, path, &[], body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path} {body:.40}");
        assert_eq!(reply.body["error"], "invalid_payload");
        assert_eq!(reply.body["field"], field, "{path} {body:.40}");
    }
    let shopify = post(&app, "/webhooks/shopify", &[], "{}").await;
    assert_eq!(shopify.status, StatusCode::BAD_REQUEST);
    assert_eq!(shopify.body["field"], "X-Shopify-Event-Id");
    assert_eq!(totals(db).await, Totals::default());
}

async fn routing_errors_are_json(db: &TestDb) {
    let app = db.app();
    for path in [
        "/webhooks/Refersion",
        "/webhooks/has.dot",
        "/webhooks/",
        "/nope",
        "/webhooks/a/b",
        &format!("/webhooks/{}", "a".repeat(65)),
    ] {
        let reply = post(&app, path, &[], SEED).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(reply.body["error"], "not_found");
    }
    assert_eq!(
        post(
            &app,
            &format!("/webhooks/{}", "a".repeat(64)),
            &[],
            r#"{"id":"1"}"#
        )
        .await
        .status,
        StatusCode::OK
    );
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let reply = request(
            &app,
            warp::test::request()
                .method(method)
                .path("/webhooks/refersion"),
        )
        .await;
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(reply.body["error"], "method_not_allowed");
    }
    let reply = request(&app, warp::test::request().method("POST").path("/healthz")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(totals(db).await.events, 1);
}

async fn oversized_and_wrongly_typed_bodies_are_refused(db: &TestDb) {
    let config = Config {
        max_body_bytes: 64,
        ..db.config()
    };
    let app = db.app_with(&config);
    let big = format!(r#"{{"event_id":"big","pad":"{}"}}"#, "x".repeat(100));
    let reply = post(&app, "/webhooks/acme", &[], &big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.body["error"], "payload_too_large");

    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let reply = request(
            &app,
            warp::test::request()
                .method("POST")
                .path("/webhooks/acme")
                .header("content-type", content_type)
                .body(r#"{"id":"1"}"#),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert_eq!(reply.body["error"], "unsupported_media_type");
    }
    let missing = request(
        &app,
        warp::test::request()
            .method("POST")
            .path("/webhooks/acme")
            .body(r#"{"id":"1"}"#),
    )
    .await;
    assert_eq!(missing.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let charset = request(
        &app,
        warp::test::request()
            .method("POST")
            .path("/webhooks/acme")
            .header("content-type", "Application/JSON; charset=utf-8")
            .body(r#"{"id":"1"}"#),
    )
    .await;
    assert_eq!(charset.status, StatusCode::OK);
    assert_eq!(totals(db).await.events, 1);
}

async fn event_ids_by_source(db: &TestDb) {
    let app = db.app();
    // (source, headers, body, expected id, expected type)
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        &'a str,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "shopify",
            vec![
                ("X-Shopify-Event-Id", "ev-1"),
                ("X-Shopify-Webhook-Id", "wh-1"),
                ("X-Shopify-Topic", "orders/create"),
            ],
            "{}",
            "ev-1",
            Some("orders/create"),
        ),
        (
            "shopify",
            vec![("X-Shopify-Webhook-Id", "wh-2")],
            "{}",
            "wh-2",
            None,
        ),
        (
            "stripe",
            vec![],
            r#"{"id":"evt_1","type":"charge.succeeded","pending_webhooks":1}"#,
            "evt_1",
            Some("charge.succeeded"),
        ),
        (
            "github",
            vec![
                ("X-GitHub-Delivery", "72d3162e-cc78"),
                ("X-GitHub-Event", "push"),
            ],
            r#"{"zen":"x"}"#,
            "72d3162e-cc78",
            Some("push"),
        ),
        (
            "acme",
            vec![("webhook-id", "msg_1"), ("Idempotency-Key", "ik")],
            r#"{"id":"body"}"#,
            "msg_1",
            None,
        ),
        (
            "acme",
            vec![("Idempotency-Key", "ik-1")],
            r#"{"event_id":"e","type":"t"}"#,
            "ik-1",
            Some("t"),
        ),
        (
            "acme",
            vec![],
            r#"{"event_id":42,"event_type":"thing","type":"other"}"#,
            "42",
            Some("thing"),
        ),
        (
            "acme",
            vec![],
            r#"{"id":18446744073709551617}"#,
            "18446744073709551617",
            None,
        ),
    ];
    for (name, headers, body, expected, event_type) in cases {
        let reply = post(&app, &format!("/webhooks/{name}"), &headers, body).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{name} {body}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["event_id"], expected);
        let stored = db
            .store
            .event(&source(name), &id(expected))
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.event_type.as_deref(),
            event_type,
            "{name} {expected}"
        );
    }
    // Stripe changes pending_webhooks and request between retries of one event.
    let retry = post(
        &app,
        "/webhooks/stripe",
        &[],
        r#"{"id":"evt_1","type":"charge.succeeded","pending_webhooks":3,"request":{"id":null}}"#,
    )
    .await;
    assert_eq!(retry.body["status"], "accepted");
}

async fn ids_are_compared_exactly_and_stored_verbatim(db: &TestDb) {
    let app = db.app();
    let ids = [
        "abc",
        "ABC",
        " abc",
        "abc ",
        "quote\"s and 'single'",
        "'; DROP TABLE webhook_events; --",
        "emoji 🎉 ünïcödé",
        &"é".repeat(127),
    ];
    for raw in ids {
        let body = format!(r#"{{"event_id":"{}"}}"#, raw.replace('"', "\\\""));
        let reply = post(&app, "/webhooks/acme", &[], &body).await;
        assert_eq!(reply.status, StatusCode::OK, "{raw}: {:?}", reply.body);
        let again = post(&app, "/webhooks/acme", &[], &body).await;
        assert_eq!(again.status, StatusCode::ACCEPTED, "{raw}");
    }
    // PostgreSQL text cannot hold U+0000, so neither backend stores it: 400 on both.
    let nul = post(
        &app,
        "/webhooks/acme",
        &[],
        r#"{"event_id":"nul\u0000byte"}"#,
    )
    .await;
    assert_eq!(nul.status, StatusCode::BAD_REQUEST);
    assert_eq!(nul.body["field"], "event_id");
    let nul_type = post(
        &app,
        "/webhooks/acme",
        &[],
        r#"{"event_id":"fine","type":"a\u0000b"}"#,
    )
    .await;
    assert_eq!(nul_type.status, StatusCode::BAD_REQUEST);
    assert_eq!(nul_type.body["field"], "event_type");
    let emoji = db
        .store
        .event(&source("acme"), &id("emoji 🎉 ünïcödé"))
        .unwrap()
        .unwrap();
    assert_eq!(emoji.external_event_id, "emoji 🎉 ünïcödé");
    assert_eq!(totals(db).await.events, ids.len() as i64);
    // 256 bytes of two-byte characters is one byte too many.
    let over = format!(r#"{{"event_id":"{}"}}"#, "é".repeat(128));
    assert_eq!(
        post(&app, "/webhooks/acme", &[], &over).await.status,
        StatusCode::BAD_REQUEST
    );
}

async fn same_id_in_two_sources_is_two_events(db: &TestDb) {
    let app = db.app();
    let a = post(&app, "/webhooks/refersion", &[], &sale("shared", "1")).await;
    let b = post(&app, "/webhooks/acme", &[], r#"{"event_id":"shared"}"#).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.status, StatusCode::OK);
    assert_ne!(a.body["webhook_event_id"], b.body["webhook_event_id"]);
    assert_eq!(
        totals(db).await,
        Totals {
            events: 2,
            conversions: 1,
            conflicts: 0
        }
    );
}

fn new_event(event_id: &str, fingerprint: &str, conversion: bool) -> NewEvent {
    NewEvent {
        source: source("refersion"),
        event_id: id(event_id),
        event_type: Some("sale".into()),
        payload: format!(r#"{{"event_id":"{event_id}"}}"#),
        fingerprint: fingerprint.into(),
        conversion: conversion.then(|| {
            NewConversion::sale(
                "o-1".into(),
                hooklatch::model::Amount::parse("1.50").unwrap(),
                hooklatch::model::Amount::parse("10").unwrap(),
                Some("EUR".into()),
                None,
            )
        }),
        forward: false,
    }
}

async fn store_level_outcomes(db: &TestDb) {
    let store = db.store.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let first = store.process(&new_event("e1", "aa", true)).unwrap();
        let dup = store.process(&new_event("e1", "aa", true)).unwrap();
        let conflict = store.process(&new_event("e1", "bb", true)).unwrap();
        let plain = store.process(&new_event("e2", "aa", false)).unwrap();
        (first, dup, conflict, plain)
    })
    .await
    .unwrap();
    let Outcome::Processed(receipt) = outcomes.0 else {
        panic!("{:?}", outcomes.0)
    };
    assert!(receipt.conversion_id.is_some());
    assert!(receipt.applied, "a new sale creates its conversion");
    let original = hooklatch::model::Receipt {
        applied: false,
        ..receipt.clone()
    };
    assert_eq!(outcomes.1, Outcome::Duplicate(original.clone()));
    assert_eq!(outcomes.2, Outcome::Conflict(original));
    let Outcome::Processed(plain) = outcomes.3 else {
        panic!("{:?}", outcomes.3)
    };
    assert_eq!(plain.conversion_id, None);
    assert_ne!(plain.webhook_event_id, receipt.webhook_event_id);
    let conversion = db.conversion(&source("refersion"), &id("e1")).unwrap();
    assert_eq!(Some(conversion.id), receipt.conversion_id);
    assert_eq!(conversion.commission_amount.to_string(), "1.50");
    assert_eq!(conversion.sale_amount.to_string(), "10");
    assert_eq!(
        db.store.event(&source("refersion"), &id("nope")).unwrap(),
        None
    );
    assert_eq!(db.conversion(&source("refersion"), &id("e2")), None);
    db.store.ping().unwrap();
}

async fn sixty_four_threads_one_event_one_conversion(db: &TestDb) {
    let store = db.store.clone();
    let outcomes = tokio::task::spawn_blocking(move || {
        let barrier = Arc::new(std::sync::Barrier::new(64));
        let handles: Vec<_> = (0..64)
            .map(|_| {
                let store = store.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    store.process(&new_event("race", "ff", true))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let processed = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::Processed(_))))
        .count();
    let duplicates = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Outcome::Duplicate(_))))
        .count();
    assert_eq!((processed, duplicates), (1, 63), "{outcomes:?}");
    let receipts: std::collections::HashSet<_> = outcomes
        .iter()
        .map(|o| {
            let receipt = o.as_ref().unwrap().receipt();
            (receipt.webhook_event_id, receipt.conversion_id)
        })
        .collect();
    assert_eq!(receipts.len(), 1, "every thread sees the original ids");
    let event = db
        .store
        .event(&source("refersion"), &id("race"))
        .unwrap()
        .unwrap();
    assert_eq!(event.delivery_count, 64);
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1,
            conversions: 1,
            conflicts: 0
        }
    );
}

async fn sixty_four_concurrent_http_deliveries_one_conversion(db: &TestDb) {
    let app = db.app();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { post(&app, "/webhooks/refersion", &[], SEED).await })
        })
        .collect();
    let mut statuses = HashMap::new();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let reply: Reply = task.await.unwrap();
        *statuses.entry(reply.status.as_u16()).or_insert(0) += 1;
        ids.insert((
            reply.body["webhook_event_id"].clone(),
            reply.body["conversion_id"].clone(),
        ));
    }
    assert_eq!(statuses, HashMap::from([(200, 1), (202, 63)]));
    assert_eq!(ids.len(), 1);
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1,
            conversions: 1,
            conflicts: 0
        }
    );
    assert_eq!(
        db.store
            .event(&source("refersion"), &id("ref_evt_123456"))
            .unwrap()
            .unwrap()
            .delivery_count,
        64
    );
}

async fn thousand_events_from_thirty_two_clients_over_a_socket(db: &TestDb) {
    let server = common::TestServer::start(db.app()).await;
    let addr = server.addr;
    let statuses = tokio::task::spawn_blocking(move || {
        let handles: Vec<_> = (0..32)
            .map(|client| {
                std::thread::spawn(move || {
                    (client..1000)
                        .step_by(32)
                        .map(|n| {
                            common::http_post(
                                addr,
                                "/webhooks/refersion",
                                &[],
                                &sale(&format!("bulk-{n}"), "2.50"),
                            )
                            .status
                        })
                        .collect::<Vec<u16>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<u16>>()
    })
    .await
    .unwrap();
    server.stop().await;
    assert_eq!(statuses.len(), 1000);
    let refused: Vec<_> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        refused.is_empty(),
        "every distinct event is processed, none refused or busy: {refused:?}"
    );
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1000,
            conversions: 1000,
            conflicts: 0
        }
    );
}

async fn signed_sources_verify_before_storing(db: &TestDb) {
    let mut config = db.config();
    let body = r#"{"event_type":"sale","event_id":"signed-1","order_id":"o","commission_amount":1,"sale_amount":2}"#;
    let secret = "rfsn_secret";
    config.sources.insert(
        "refersion",
        SourceSettings::new(Preset::Refersion, vec!["old".into(), secret.into()]),
    );
    let app = db.app_with(&config);
    let signature = common::base64_hmac(secret, body.as_bytes());

    let unsigned = post(&app, "/webhooks/refersion", &[], body).await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unsigned.body["error"], "invalid_signature");
    assert_eq!(unsigned.body["reason"], "missing_header");
    let tampered = body.replace("\"sale_amount\":2", "\"sale_amount\":2000");
    let forged = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Signature", &signature)],
        &tampered,
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.body["reason"], "no_match");
    assert!(!forged.body.to_string().contains(secret));
    assert_eq!(
        totals(db).await,
        Totals::default(),
        "a refused delivery stores nothing"
    );

    let signed = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Signature", &signature)],
        body,
    )
    .await;
    assert_eq!(signed.status, StatusCode::OK);
    let replay = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Signature", &signature)],
        body,
    )
    .await;
    assert_eq!(replay.status, StatusCode::ACCEPTED);
    // A bad signature on a known id is still refused, not answered as a duplicate.
    let replay_forged = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Signature", "AAAA")],
        body,
    )
    .await;
    assert_eq!(replay_forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(replay_forged.body["reason"], "bad_format");
    assert_eq!(
        db.store
            .event(&source("refersion"), &id("signed-1"))
            .unwrap()
            .unwrap()
            .delivery_count,
        2
    );
    // Other sources are unaffected by refersion's secret.
    assert_eq!(
        post(&app, "/webhooks/acme", &[], r#"{"id":"free"}"#)
            .await
            .status,
        StatusCode::OK
    );
}

async fn migrations_run_once(db: &TestDb) {
    db.store.migrate().expect("second migrate is a no-op");
    let other = db.reopen();
    let store = other.clone();
    tokio::task::spawn_blocking(move || store.migrate())
        .await
        .unwrap()
        .expect("another instance migrates too");
    assert_eq!(
        post(&db.app(), "/webhooks/refersion", &[], SEED)
            .await
            .status,
        StatusCode::OK
    );
    let app2 = Arc::new(hooklatch::App::new(other.clone(), &db.config()));
    assert_eq!(
        post(&app2, "/webhooks/refersion", &[], SEED).await.status,
        StatusCode::ACCEPTED
    );
    tokio::task::spawn_blocking(move || drop((other, app2)))
        .await
        .unwrap();
}

async fn health_and_readiness(db: &TestDb) {
    let app = db.app();
    let health = request(&app, warp::test::request().method("GET").path("/healthz")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status":"ok"}));
    let ready = request(&app, warp::test::request().method("GET").path("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["status"], "ready");
    assert_eq!(ready.body["store"], db.store.backend());
}

/// One signed delivery per preset: the headers that sign `body` with `secret` now.
fn signed_headers(preset: &str, secret: &str, body: &str, event: &str) -> Vec<(String, String)> {
    use base64::Engine;
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mac = |key: &[u8], message: &[u8]| common::hmac_sha256(key, message);
    let pairs: Vec<(&str, String)> = match preset {
        "refersion" => vec![(
            "Refersion-Signature",
            b64(mac(secret.as_bytes(), body.as_bytes())),
        )],
        "shopify" => vec![
            (
                "X-Shopify-Hmac-Sha256",
                b64(mac(secret.as_bytes(), body.as_bytes())),
            ),
            ("X-Shopify-Webhook-Id", event.to_owned()),
            ("X-Shopify-Topic", "orders/create".to_owned()),
        ],
        "stripe" => {
            let signed = format!("{now}.{body}");
            vec![(
                "Stripe-Signature",
                format!(
                    "t={now},v1={}",
                    hex::encode(mac(secret.as_bytes(), signed.as_bytes()))
                ),
            )]
        }
        "github" => vec![
            (
                "X-Hub-Signature-256",
                format!(
                    "sha256={}",
                    hex::encode(mac(secret.as_bytes(), body.as_bytes()))
                ),
            ),
            ("X-GitHub-Delivery", event.to_owned()),
            ("X-GitHub-Event", "push".to_owned()),
        ],
        "standard" => {
            let key = hooklatch::sources::standard_secret_key(secret).unwrap();
            let signed = format!("{event}.{now}.{body}");
            vec![
                ("webhook-id", event.to_owned()),
                ("webhook-timestamp", now.to_string()),
                (
                    "webhook-signature",
                    format!("v1,{}", b64(mac(&key, signed.as_bytes()))),
                ),
            ]
        }
        "generic" => vec![
            (
                "X-Signature",
                format!(
                    "sha256={}",
                    hex::encode(mac(secret.as_bytes(), body.as_bytes()))
                ),
            ),
            ("X-Event", event.to_owned()),
        ],
        other => panic!("no preset {other}"),
    };
    pairs.into_iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

async fn every_preset_accepts_signed_and_refuses_forged_deliveries(db: &TestDb) {
    use hooklatch::sources::{Encoding, GenericScheme, IdLocation};
    let mut config = db.config();
    let generic = Preset::Generic(GenericScheme {
        signature_header: "X-Signature".into(),
        encoding: Encoding::Hex,
        prefix: Some("sha256=".into()),
        id: Some(IdLocation::Header("X-Event".into())),
    });
    // (source name, preset, preset name, secret, body)
    let cases = [
        (
            "refersion",
            Preset::Refersion,
            "refersion",
            "rfsn_secret",
            r#"{"event_type":"sale","event_id":"p-ref","order_id":"o","commission_amount":1,"sale_amount":2}"#,
        ),
        (
            "shop-eu",
            Preset::Shopify,
            "shopify",
            "shpss_secret",
            r#"{"id":820982911946154508,"total_price":"59.00"}"#,
        ),
        (
            "stripe",
            Preset::Stripe,
            "stripe",
            "whsec_stripe_secret",
            r#"{"id":"evt_p1","type":"charge.succeeded","pending_webhooks":1}"#,
        ),
        (
            "github",
            Preset::Github,
            "github",
            "gh secret",
            r#"{"zen":"Keep it logically awesome."}"#,
        ),
        (
            "svix-app",
            Preset::Standard,
            "standard",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            r#"{"type":"contact.created","data":{"id":1}}"#,
        ),
        (
            "woo",
            generic,
            "generic",
            "wc_secret",
            r#"{"id":727,"status":"processing"}"#,
        ),
    ];
    for (name, preset, _, secret, _) in &cases {
        config.sources.insert(
            name,
            SourceSettings::new(preset.clone(), vec![secret.to_string()]),
        );
    }
    let app = db.app_with(&config);
    for (name, _, preset_name, secret, body) in cases {
        let path = format!("/webhooks/{name}");
        let event = format!("evt-{name}");
        let headers = signed_headers(preset_name, secret, body, &event);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();

        const SIGNATURE_HEADERS: [&str; 6] = [
            "Refersion-Signature",
            "X-Shopify-Hmac-Sha256",
            "Stripe-Signature",
            "X-Hub-Signature-256",
            "webhook-signature",
            "X-Signature",
        ];
        let unsigned: Vec<(&str, &str)> = headers
            .iter()
            .copied()
            .filter(|(n, _)| !SIGNATURE_HEADERS.contains(n))
            .collect();
        assert_eq!(
            unsigned.len() + 1,
            headers.len(),
            "{name}: exactly the signature is dropped"
        );
        let refused = post(&app, &path, &unsigned, body).await;
        assert_eq!(
            refused.status,
            StatusCode::UNAUTHORIZED,
            "{name} unsigned: {:?}",
            refused.body
        );
        assert_eq!(refused.body["reason"], "missing_header", "{name}");

        // One added space: the same JSON, different bytes.
        let tampered = format!(" {body}");
        let forged = post(&app, &path, &headers, &tampered).await;
        assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{name} tampered");
        assert_eq!(forged.body["reason"], "no_match", "{name}");
        assert!(!forged.body.to_string().contains(secret));

        let wrong_secret = signed_headers(
            preset_name,
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            body,
            &event,
        );
        let wrong: Vec<(&str, &str)> = wrong_secret
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            post(&app, &path, &wrong, body).await.status,
            StatusCode::UNAUTHORIZED,
            "{name} wrong secret"
        );
        assert_eq!(
            totals(db).await.events,
            0,
            "{name}: nothing stored for a refused delivery"
        );

        let signed = post(&app, &path, &headers, body).await;
        assert_eq!(signed.status, StatusCode::OK, "{name}: {:?}", signed.body);
        let replay = post(&app, &path, &headers, body).await;
        assert_eq!(replay.status, StatusCode::ACCEPTED, "{name} replay");
        assert_eq!(
            replay.body["webhook_event_id"],
            signed.body["webhook_event_id"]
        );
        let stored = db
            .store
            .event(
                &source(name),
                &id(signed.body["event_id"].as_str().unwrap()),
            )
            .unwrap()
            .unwrap();
        assert_eq!(
            stored.payload.as_deref(),
            Some(body),
            "the raw bytes that were signed are kept"
        );
        assert_eq!(totals(db).await.events, 1, "{name}");
        // Clean the slate for the next preset's "nothing stored" check.
        reset(db).await;
    }
}

/// Forgets every row, so a case can check "nothing stored" per step.
async fn reset(db: &TestDb) {
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || common::wipe(&url))
        .await
        .unwrap();
}

/// Sends the seed sale while another client holds an uncommitted insert of the same id,
/// checks that the delivery waits, then lets the other client finish.
async fn deliver_while_held(db: &TestDb, commit: bool) -> Reply {
    let held = {
        let url = db.url.clone();
        tokio::task::spawn_blocking(move || {
            common::HeldInsert::start(&url, "refersion", "ref_evt_123456")
        })
        .await
        .unwrap()
    };
    let (store, entered) = common::Watched::new(db.store.clone());
    let app = Arc::new(hooklatch::App::new(store, &db.config()));
    let delivery = tokio::spawn(async move { post(&app, "/webhooks/refersion", &[], SEED).await });
    // Proof that the delivery is in the store, not merely that time passed: it entered
    // `process`, and on PostgreSQL its session waits for the held row's lock. (SQLite
    // shows no lock wait from outside; there the outcome proves the wait: without it
    // the delivery would insert, and the held insert's commit would then fail.)
    let url = db.url.clone();
    let blocked = tokio::task::spawn_blocking(move || {
        let limit = std::time::Duration::from_secs(10);
        entered.recv_timeout(limit).is_ok()
            && match &url {
                hooklatch::config::DatabaseUrl::Postgres(url) => {
                    common::some_session_waits_for_a_lock(url, limit)
                }
                _ => true,
            }
    })
    .await
    .unwrap();
    assert!(blocked, "the delivery reached the store and waits there");
    assert!(
        !delivery.is_finished(),
        "the delivery waits for the other transaction"
    );
    tokio::task::spawn_blocking(move || held.finish(commit))
        .await
        .unwrap();
    delivery.await.unwrap()
}

async fn a_delivery_waiting_on_a_rolled_back_first_becomes_the_first(db: &TestDb) {
    let reply = deliver_while_held(db, false).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "processed");
    assert!(reply.body["conversion_id"].is_i64());
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1,
            conversions: 1,
            conflicts: 0
        }
    );
}

async fn a_delivery_waiting_on_a_committed_first_does_not_insert_again(db: &TestDb) {
    let reply = deliver_while_held(db, true).await;
    // The held row has another fingerprint, so the waiting delivery is a conflict.
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "conflict");
    assert_eq!(
        reply.body["conversion_id"],
        Value::Null,
        "the first one had no sale"
    );
    assert_eq!(
        totals(db).await,
        Totals {
            events: 1,
            conversions: 0,
            conflicts: 1
        }
    );
}

// --- Refersion conversions (SPEC §2, Conversions) ---

const CONVERSION: u64 = 987654321;

/// Rows of events, conversions and conflicts.
async fn counts(db: &TestDb) -> (i64, i64, i64) {
    let t = totals(db).await;
    (t.events, t.conversions, t.conflicts)
}

/// Delivers a conversion body under a Refersion topic.
async fn topic(app: &Arc<hooklatch::App>, topic: &str, body: &str) -> Reply {
    post(
        app,
        "/webhooks/refersion",
        &[("Refersion-Topic", topic)],
        body,
    )
    .await
}

/// The conversion as the event `topic:id` sees it.
fn stored_conversion(db: &TestDb, event_id: &str) -> common::StoredConversion {
    db.conversion(&source("refersion"), &id(event_id))
        .unwrap_or_else(|| panic!("no conversion linked to {event_id}"))
}

/// Delivers under `name` and checks it was a new event that left the conversion at
/// `status`, having moved it (`applied`) or not (stale).
async fn step(
    app: &Arc<hooklatch::App>,
    name: &str,
    body: &str,
    status: &str,
    applied: bool,
) -> Reply {
    let reply = topic(app, name, body).await;
    assert_processed(&reply, status, applied);
    reply
}

fn assert_processed(reply: &Reply, status: &str, applied: bool) {
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "processed");
    assert_eq!(reply.body["conversion_status"], status, "{:?}", reply.body);
    assert_eq!(reply.body["applied"], applied, "{:?}", reply.body);
}

async fn a_conversion_delivery_creates_one_conversion(db: &TestDb) {
    let app = db.app();
    let body = conversion_body(CONVERSION, "pending", "59.00", None);
    let reply = step(&app, "NEW_CONVERSION", &body, "PENDING", true).await;
    assert_eq!(reply.body["event_id"], "NEW_CONVERSION:987654321");
    let conversion = stored_conversion(db, "NEW_CONVERSION:987654321");
    assert_eq!(reply.body["conversion_id"], conversion.id);
    assert_eq!(
        conversion.external_conversion_id.as_deref(),
        Some("987654321")
    );
    assert_eq!(conversion.external_event_id, "NEW_CONVERSION:987654321");
    assert_eq!(conversion.status.as_deref(), Some("PENDING"));
    assert_eq!(conversion.sale_amount.to_string(), "59.00");
    assert_eq!(conversion.commission_amount.to_string(), "5.90");
    assert_eq!(conversion.currency.as_deref(), Some("USD"));
    assert_eq!(conversion.order_id.as_deref(), Some("1001"));
    assert_eq!(conversion.affiliate_id.as_deref(), Some("123"));
    assert_eq!(conversion.affiliate_code.as_deref(), Some("a3y7"));
    assert_eq!(conversion.tracking_id, None);
    assert_eq!(
        conversion.source_updated_at.as_deref(),
        Some("2026-01-05T10:00:00.000000Z"),
        "created, read as UTC"
    );
    assert_eq!(conversion.created_at, conversion.updated_at);
    let event = db
        .store
        .event(&source("refersion"), &id("NEW_CONVERSION:987654321"))
        .unwrap()
        .unwrap();
    assert_eq!(event.conversion_id, Some(conversion.id));
    assert_eq!(event.event_type.as_deref(), Some("NEW_CONVERSION"));
    assert_eq!(
        counts(db).await,
        (1, 1, 0),
        "events, conversions, conflicts"
    );
}

async fn approval_after_pending_moves_the_conversion(db: &TestDb) {
    let app = db.app();
    let new = step(
        &app,
        "NEW_CONVERSION",
        &conversion_body(CONVERSION, "PENDING", "59.00", None),
        "PENDING",
        true,
    )
    .await;
    let approved = conversion_body(CONVERSION, "APPROVED", "61.00", Some("2026-01-06 08:00:00"));
    let reply = step(&app, "APPROVED_CONVERSION", &approved, "APPROVED", true).await;
    assert_eq!(reply.body["conversion_id"], new.body["conversion_id"]);
    assert_ne!(reply.body["webhook_event_id"], new.body["webhook_event_id"]);
    let conversion = stored_conversion(db, "APPROVED_CONVERSION:987654321");
    assert_eq!(conversion.status.as_deref(), Some("APPROVED"));
    assert_eq!(
        conversion.sale_amount.to_string(),
        "61.00",
        "amounts follow"
    );
    assert_eq!(
        conversion.source_updated_at.as_deref(),
        Some("2026-01-06T08:00:00.000000Z")
    );
    assert_eq!(
        conversion.external_event_id, "NEW_CONVERSION:987654321",
        "still the event that created it"
    );
    assert!(conversion.updated_at > conversion.created_at);
    assert_eq!(
        stored_conversion(db, "NEW_CONVERSION:987654321"),
        conversion,
        "both events link to the one conversion"
    );
    assert_eq!(
        counts(db).await,
        (2, 1, 0),
        "events, conversions, conflicts"
    );
}

async fn a_late_pending_after_approval_is_stale_and_changes_nothing(db: &TestDb) {
    let app = db.app();
    let approved = conversion_body(CONVERSION, "APPROVED", "59.00", Some("2026-01-06 08:00:00"));
    step(&app, "APPROVED_CONVERSION", &approved, "APPROVED", true).await;
    let before = stored_conversion(db, "APPROVED_CONVERSION:987654321");
    // Reordered: the earlier PENDING arrives last, with an older timestamp.
    let late = conversion_body(CONVERSION, "PENDING", "50.00", Some("2026-01-05 10:00:00"));
    let reply = step(&app, "NEW_CONVERSION", &late, "APPROVED", false).await;
    assert_eq!(reply.body["conversion_id"], before.id);
    assert_eq!(
        stored_conversion(db, "APPROVED_CONVERSION:987654321"),
        before
    );
    // Still an event of its own, recorded, counted and linked.
    let event = db
        .store
        .event(&source("refersion"), &id("NEW_CONVERSION:987654321"))
        .unwrap()
        .unwrap();
    assert_eq!(event.conversion_id, Some(before.id));
    assert_eq!(event.payload.as_deref(), Some(late.as_str()));
    // Stale by timestamp alone, whatever the status: an older APPROVED changes nothing.
    let older = conversion_body(CONVERSION, "DENIED", "1.00", Some("2026-01-06 07:59:59"));
    step(&app, "DENIED_CONVERSION", &older, "APPROVED", false).await;
    assert_eq!(
        stored_conversion(db, "APPROVED_CONVERSION:987654321"),
        before
    );
    assert_eq!(
        counts(db).await,
        (3, 1, 0),
        "events, conversions, conflicts"
    );
}

async fn equal_timestamps_never_move_a_decided_conversion_back_to_pending(db: &TestDb) {
    let app = db.app();
    let at = Some("2026-01-06 08:00:00");
    let approved = conversion_body(CONVERSION, "APPROVED", "59.00", at);
    step(&app, "APPROVED_CONVERSION", &approved, "APPROVED", true).await;
    let pending = conversion_body(CONVERSION, "PENDING", "59.00", at);
    step(&app, "NEW_CONVERSION", &pending, "APPROVED", false).await;
    // Forward (or sideways among decided statuses) at the same time is applied.
    let denied = conversion_body(CONVERSION, "DENIED", "59.00", at);
    step(&app, "DENIED_CONVERSION", &denied, "DENIED", true).await;
    assert_eq!(
        stored_conversion(db, "NEW_CONVERSION:987654321")
            .status
            .as_deref(),
        Some("DENIED")
    );
    // PENDING after PENDING at the same time is no move backwards.
    let other = 42;
    let first = conversion_body(other, "PENDING", "10.00", at);
    step(&app, "NEW_CONVERSION", &first, "PENDING", true).await;
    let again = conversion_body(other, "PENDING", "12.00", at);
    step(&app, "PENDING_CONVERSION", &again, "PENDING", true).await;
    assert_eq!(
        stored_conversion(db, "NEW_CONVERSION:42")
            .sale_amount
            .to_string(),
        "12.00"
    );
}

async fn missing_timestamps_never_move_a_decided_conversion_back_to_pending(db: &TestDb) {
    let app = db.app();
    let bare = |status: &str, total: &str| {
        format!(
            r#"{{"id":{CONVERSION},"status":"{status}","total":"{total}","commission_total":"1.00"}}"#
        )
    };
    step(
        &app,
        "NEW_CONVERSION",
        &bare("PENDING", "10"),
        "PENDING",
        true,
    )
    .await;
    step(
        &app,
        "APPROVED_CONVERSION",
        &bare("APPROVED", "11"),
        "APPROVED",
        true,
    )
    .await;
    step(
        &app,
        "PENDING_AGAIN",
        &bare("PENDING", "12"),
        "APPROVED",
        false,
    )
    .await;
    let conversion = stored_conversion(db, "NEW_CONVERSION:987654321");
    assert_eq!(conversion.status.as_deref(), Some("APPROVED"));
    assert_eq!(conversion.sale_amount.to_string(), "11");
    assert_eq!(conversion.source_updated_at, None);
    // One side timestamped, the other not: the same rule.
    let dated = conversion_body(CONVERSION, "PENDING", "13.00", Some("2026-01-07 00:00:00"));
    step(&app, "DATED_PENDING", &dated, "APPROVED", false).await;
    // A timestamped decision is applied and its timestamp kept; a later undated
    // decision moves the status without erasing it.
    let dated_denial = conversion_body(CONVERSION, "DENIED", "14.00", Some("2026-01-08 00:00:00"));
    step(&app, "DENIED_CONVERSION", &dated_denial, "DENIED", true).await;
    step(
        &app,
        "UNQUALIFIED",
        &bare("UNQUALIFIED", "15"),
        "UNQUALIFIED",
        true,
    )
    .await;
    let conversion = stored_conversion(db, "NEW_CONVERSION:987654321");
    assert_eq!(
        conversion.source_updated_at.as_deref(),
        Some("2026-01-08T00:00:00.000000Z")
    );
    assert_eq!(totals(db).await.conversions, 1);
}

async fn denial_after_pending_moves_the_conversion(db: &TestDb) {
    let app = db.app();
    let new = conversion_body(CONVERSION, "PENDING", "59.00", None);
    step(&app, "NEW_CONVERSION", &new, "PENDING", true).await;
    let denied = conversion_body(CONVERSION, "DENIED", "59.00", Some("2026-01-06 08:00:00"));
    step(&app, "DENIED_CONVERSION", &denied, "DENIED", true).await;
    // A late approval older than the denial is stale.
    let late = conversion_body(CONVERSION, "APPROVED", "59.00", Some("2026-01-06 07:00:00"));
    step(&app, "APPROVED_CONVERSION", &late, "DENIED", false).await;
    assert_eq!(
        stored_conversion(db, "NEW_CONVERSION:987654321")
            .status
            .as_deref(),
        Some("DENIED")
    );
}

async fn a_duplicate_conversion_delivery_answers_the_current_status(db: &TestDb) {
    let app = db.app();
    let new = conversion_body(CONVERSION, "PENDING", "59.00", None);
    let first = step(&app, "NEW_CONVERSION", &new, "PENDING", true).await;
    let approved = conversion_body(CONVERSION, "APPROVED", "59.00", Some("2026-01-06 08:00:00"));
    step(&app, "APPROVED_CONVERSION", &approved, "APPROVED", true).await;
    // A retry of the first topic, re-serialised: a duplicate that reports where the
    // conversion stands now, and moves nothing back.
    let retry = new.replace(r#""total":"59.00""#, r#""total":59"#);
    let again = topic(&app, "NEW_CONVERSION", &retry).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{:?}", again.body);
    assert_eq!(again.body["status"], "accepted");
    assert_eq!(again.body["conversion_status"], "APPROVED");
    assert!(again.body.get("applied").is_none(), "applied is for a 200");
    assert_eq!(
        again.body["webhook_event_id"],
        first.body["webhook_event_id"]
    );
    assert_eq!(again.body["conversion_id"], first.body["conversion_id"]);
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    let same = topic(&app, "APPROVED_CONVERSION", &approved).await;
    assert_eq!(same.status, StatusCode::ACCEPTED);
    assert_eq!(same.body["conversion_status"], "APPROVED");
    assert_eq!(
        stored_conversion(db, "NEW_CONVERSION:987654321")
            .status
            .as_deref(),
        Some("APPROVED")
    );
    let event = db
        .store
        .event(&source("refersion"), &id("NEW_CONVERSION:987654321"))
        .unwrap()
        .unwrap();
    assert_eq!(event.delivery_count, 2);
    assert_eq!(
        counts(db).await,
        (2, 1, 0),
        "events, conversions, conflicts"
    );
}

async fn a_conflicting_redelivery_leaves_the_conversion_unchanged(db: &TestDb) {
    let app = db.app();
    let new = conversion_body(CONVERSION, "PENDING", "59.00", None);
    let first = step(&app, "NEW_CONVERSION", &new, "PENDING", true).await;
    let before = stored_conversion(db, "NEW_CONVERSION:987654321");
    // Same topic and id, a newer timestamp and another status: the id is reused, so it
    // is a conflict, kept for inspection, and the conversion does not move.
    for changed in [
        conversion_body(CONVERSION, "APPROVED", "59.00", Some("2026-02-01 00:00:00")),
        conversion_body(CONVERSION, "PENDING", "99.00", None),
    ] {
        let reply = topic(&app, "NEW_CONVERSION", &changed).await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
        assert_eq!(reply.body["status"], "conflict");
        assert_eq!(reply.body["conversion_status"], "PENDING");
        assert_eq!(reply.body["conversion_id"], first.body["conversion_id"]);
        assert_eq!(reply.header("X-Idempotency-Conflict"), Some("true"));
    }
    assert_eq!(stored_conversion(db, "NEW_CONVERSION:987654321"), before);
    assert_eq!(
        counts(db).await,
        (1, 1, 2),
        "events, conversions, conflicts"
    );
}

async fn invalid_conversion_fields_are_400_and_nothing_is_stored(db: &TestDb) {
    let app = db.app();
    let good = conversion_body(CONVERSION, "PENDING", "59.00", Some("2026-01-06 08:00:00"));
    let cases = [
        (
            good.replace(r#""total":"59.00""#, r#""total":"-1""#),
            "total",
        ),
        (
            good.replace(r#""total":"59.00""#, r#""total":"1.1234567""#),
            "total",
        ),
        (
            good.replace(r#""commission_total":"5.90""#, r#""commission_total":"x""#),
            "commission_total",
        ),
        (
            good.replace(r#""status":"PENDING""#, r#""status":"on hold""#),
            "status",
        ),
        (
            good.replace(r#""status":"PENDING""#, r#""status":"""#),
            "status",
        ),
        (
            good.replace(r#""status":"PENDING""#, r#""status":7"#),
            "status",
        ),
        (
            good.replace(r#""currency":"USD""#, r#""currency":"dollars""#),
            "currency",
        ),
        (
            good.replace("2026-01-06 08:00:00", "2026-01-06T08:00:00Z"),
            "updated",
        ),
        (good.replace("2026-01-05 10:00:00", "yesterday"), "created"),
        (
            good.replace(r#""order_id":"1001""#, r#""order_id":{"n":1}"#),
            "order_id",
        ),
        (good.replace(r#""id":123"#, r#""id":1.5"#), "affiliate.id"),
        (
            good.replace(r#""code":"a3y7""#, r#""code":["a"]"#),
            "affiliate.code",
        ),
    ];
    for (body, field) in &cases {
        let reply = topic(&app, "NEW_CONVERSION", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.body["error"], "invalid_payload");
        assert_eq!(reply.body["field"], *field, "{body}");
    }
    // An invalid update of an existing conversion stores nothing either.
    step(&app, "NEW_CONVERSION", &good, "PENDING", true).await;
    let before = totals(db).await;
    let bad = good.replace(r#""status":"PENDING""#, r#""status":"APPROVED!""#);
    let reply = topic(&app, "APPROVED_CONVERSION", &bad).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.body["field"], "status");
    assert_eq!(totals(db).await, before);
    assert_eq!(
        db.store
            .event(&source("refersion"), &id("APPROVED_CONVERSION:987654321"))
            .unwrap(),
        None
    );
    assert_eq!(
        stored_conversion(db, "NEW_CONVERSION:987654321")
            .status
            .as_deref(),
        Some("PENDING")
    );
}

async fn sixteen_concurrent_topics_of_one_conversion_newest_wins(db: &TestDb) {
    let app = db.app();
    let start = Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16u32)
        .map(|i| {
            let (app, start) = (app.clone(), start.clone());
            // Rising updated; statuses in no lifecycle order, the newest DENIED.
            let status = match i {
                15 => "DENIED",
                i if i % 3 == 0 => "PENDING",
                _ => "APPROVED",
            };
            let body = conversion_body(
                CONVERSION,
                status,
                &format!("{}.00", 100 + i),
                Some(&format!("2026-01-06 08:00:{i:02}")),
            );
            tokio::spawn(async move {
                start.wait().await;
                topic(&app, &format!("TOPIC_{i}"), &body).await
            })
        })
        .collect();
    let mut conversion_ids = std::collections::HashSet::new();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        conversion_ids.insert(reply.body["conversion_id"].as_i64().unwrap());
    }
    assert_eq!(conversion_ids.len(), 1, "one conversion for every topic");
    let conversion = stored_conversion(db, "TOPIC_0:987654321");
    assert_eq!(conversion.status.as_deref(), Some("DENIED"));
    assert_eq!(conversion.sale_amount.to_string(), "115.00");
    assert_eq!(
        conversion.source_updated_at.as_deref(),
        Some("2026-01-06T08:00:15.000000Z")
    );
    for i in 0..16 {
        let event = db
            .store
            .event(&source("refersion"), &id(&format!("TOPIC_{i}:987654321")))
            .unwrap()
            .unwrap();
        assert_eq!(event.conversion_id, Some(conversion.id), "TOPIC_{i}");
    }
    assert_eq!(
        counts(db).await,
        (16, 1, 0),
        "events, conversions, conflicts"
    );
}

async fn the_seed_sale_is_unchanged_by_the_lifecycle(db: &TestDb) {
    let app = db.app();
    let first = post(&app, "/webhooks/refersion", &[], SEED).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["applied"], true);
    assert_eq!(
        first.body["conversion_status"],
        Value::Null,
        "no status in the body"
    );
    let seed = db
        .conversion(&source("refersion"), &id("ref_evt_123456"))
        .unwrap();
    assert_eq!(seed.external_conversion_id, None);
    assert_eq!(seed.external_event_id, "ref_evt_123456");
    assert_eq!(seed.status, None);
    assert_eq!(seed.source_updated_at, None);
    assert_eq!(seed.order_id.as_deref(), Some("ORDER_TEST_001"));
    assert_eq!(seed.created_at, seed.updated_at);
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], SEED).await.body["conversion_status"],
        Value::Null
    );
    // A status on a seed sale is kept upper-cased; every sale is its own conversion,
    // even with the same order id.
    let with_status = r#"{"event_type":"sale","event_id":"ref_evt_2","order_id":"ORDER_TEST_001","commission_amount":1,"sale_amount":2,"status":"approved","id":987654321,"total":"5","commission_total":"1"}"#;
    let reply = post(&app, "/webhooks/refersion", &[], with_status).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["conversion_status"], "APPROVED");
    assert_ne!(reply.body["conversion_id"], first.body["conversion_id"]);
    let second = db
        .conversion(&source("refersion"), &id("ref_evt_2"))
        .unwrap();
    assert_eq!(
        second.external_conversion_id, None,
        "a sale is never a lifecycle"
    );
    assert_eq!(second.commission_amount.to_string(), "1");
    assert_eq!(
        counts(db).await,
        (2, 2, 0),
        "events, conversions, conflicts"
    );
}

async fn a_stray_conversion_row_is_adopted_not_a_permanent_503(db: &TestDb) {
    // A conversions row for the seed's event id without its event, as a partial restore
    // or a hand edit leaves it.
    let url = db.url.clone();
    tokio::task::spawn_blocking(move || {
        common::execute_sql(
            &url,
            "INSERT INTO conversions (source, external_event_id, order_id, commission_amount, sale_amount, created_at, updated_at) \
             VALUES ('refersion', 'ref_evt_123456', 'STRAY', '1.00', '2.00', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
        )
    })
    .await
    .unwrap();
    let app = db.app();
    let first = post(&app, "/webhooks/refersion", &[], SEED).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(
        first.body["applied"], false,
        "the conversion was already on record"
    );
    let stray = db
        .conversion(&source("refersion"), &id("ref_evt_123456"))
        .unwrap();
    assert_eq!(first.body["conversion_id"], stray.id);
    assert_eq!(
        stray.order_id.as_deref(),
        Some("STRAY"),
        "adopted as it stands"
    );
    let again = post(&app, "/webhooks/refersion", &[], SEED).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.body["conversion_id"], stray.id);
    assert_eq!(
        counts(db).await,
        (1, 1, 0),
        "events, conversions, conflicts"
    );
}

async fn every_conflict_is_counted_but_only_the_first_sixteen_are_kept(db: &TestDb) {
    let app = db.app();
    assert_eq!(
        post(&app, "/webhooks/refersion", &[], &sale("reused", "1"))
            .await
            .status,
        StatusCode::OK
    );
    for n in 2..=21 {
        let reply = post(
            &app,
            "/webhooks/refersion",
            &[],
            &sale("reused", &n.to_string()),
        )
        .await;
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{n}");
        assert_eq!(
            reply.body["status"], "conflict",
            "{n}: still answered as a conflict"
        );
    }
    let event = db
        .store
        .event(&source("refersion"), &id("reused"))
        .unwrap()
        .unwrap();
    assert_eq!(event.conflict_count, 20, "every conflict counted");
    assert_eq!(event.delivery_count, 21);
    let kept = db
        .store
        .conflicts(&source("refersion"), &id("reused"))
        .unwrap();
    assert_eq!(kept.len() as i64, hooklatch::store::KEPT_CONFLICTS);
    let kept_payloads: Vec<_> = kept
        .iter()
        .map(|c| c.payload.clone().unwrap_or_default())
        .collect();
    let first_sixteen: Vec<_> = (2..=17).map(|n| sale("reused", &n.to_string())).collect();
    assert_eq!(kept_payloads, first_sixteen, "the first ones, oldest first");
    assert_eq!(totals(db).await.conflicts, 16);
}
