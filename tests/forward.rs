//! Forwarding to the merchant's app (SPEC §6), on both stores: a small HTTP app inside
//! the test records what arrives and answers as each test scripts it. Retry delays are
//! milliseconds; every wait is on a condition with a deadline, never a sleep.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use common::forward_app::{Answer, TestApp};
use common::{ADMIN_TOKEN, Backend, TestDb, post};
use hooklatch::App;
use hooklatch::config::{Config, SourceSettings};
use hooklatch::forward::worker::ForwarderHandle;
use hooklatch::forward::{ForwardConfig, Forwarder};
use hooklatch::model::outbox::ForwardInfo;
use hooklatch::model::{EventId, Source};
use hooklatch::sources::Preset;
use hooklatch::store::{Operations, Receiving, Store, run_blocking};
use warp::http::StatusCode;

contract!(
    forwards_the_stored_body_byte_for_byte_with_standard_webhooks_headers,
    duplicates_conflicts_and_refused_deliveries_are_never_forwarded,
    a_sale_and_a_conversion_delivery_are_forwarded_like_any_event,
    retries_until_a_2xx_with_the_same_webhook_id,
    a_redirect_is_a_failed_attempt_and_is_not_followed,
    gives_up_after_max_attempts_then_an_operator_retry_delivers,
    a_hanging_app_is_a_failed_attempt_and_webhooks_are_answered_meanwhile,
    a_leased_entry_is_claimed_by_no_one_else_until_the_lease_expires,
    no_more_than_forward_concurrency_attempts_are_in_flight,
    the_retry_command_queues_failed_forwards_and_refuses_to_guess,
    forward_types_decide_which_new_events_get_an_outbox_entry,
    history_keeps_each_attempt_with_its_answer_newest_first,
    history_is_capped_at_20_attempts_and_1_kib_per_answer,
    retry_after_on_429_or_503_sets_the_next_attempt_at_most_retry_max_away,
    forward_rate_is_honoured_by_the_arrival_times_at_the_app,
    consecutive_failures_pause_the_source_and_alert_once_per_incident,
    a_pause_survives_a_restart,
    pause_resume_and_replay_from_the_command_line,
    replay_by_window_carries_the_same_webhook_id,
);

/// The Standard Webhooks test secret of providers.md §4.4.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// Generous bound on anything that should take milliseconds here.
const PATIENCE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------
// hooklatch with forwarding on
// ---------------------------------------------------------------------------------------

/// Millisecond retries, so schedules run out within a test.
fn fast(max_attempts: u32) -> ForwardConfig {
    ForwardConfig {
        secret: Some(hooklatch::sources::standard_secret_key(SECRET).unwrap()),
        timeout: Duration::from_secs(5),
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_millis(80),
        max_attempts,
        concurrency: 4,
        pause_after: 1000,
        alert_to: None,
    }
}

/// An app forwarding `shop` (unsigned), `signed` (Standard Webhooks secret) and
/// `refersion` to `target`, on `store`, with the admin side on.
fn app_on(store: Arc<dyn Store>, db: &TestDb, target: &TestApp) -> Arc<App> {
    let mut config: Config = db.config();
    config.admin_token = Some(ADMIN_TOKEN.to_owned());
    let forwarding = |secrets: Vec<String>| SourceSettings {
        forward_to: Some(target.url()),
        ..SourceSettings::new(Preset::Standard, secrets)
    };
    config.sources.insert("shop", forwarding(Vec::new()));
    config
        .sources
        .insert("signed", forwarding(vec![SECRET.to_owned()]));
    config.sources.insert(
        "refersion",
        SourceSettings {
            forward_to: Some(target.url()),
            ..SourceSettings::new(Preset::Refersion, Vec::new())
        },
    );
    Arc::new(App::new(store, &config))
}

/// Another instance on the same store, with a small pool: the PostgreSQL server's
/// connections are shared by every test running in parallel.
fn second_instance(db: &TestDb) -> Arc<dyn Store> {
    let options = hooklatch::store::StoreOptions {
        pool_size: 4,
        ..Default::default()
    };
    hooklatch::store::open(&db.url, &options).expect("second instance")
}

fn start_worker(app: &Arc<App>, options: ForwardConfig) -> ForwarderHandle {
    Forwarder::new(
        app.store.clone(),
        options,
        app.sources.clone(),
        app.forward_wake.clone(),
    )
    .unwrap()
    .spawn()
}

async fn state(store: &Arc<dyn Store>, source: &str, id: &str) -> Option<ForwardInfo> {
    let store = store.clone();
    let (source, id) = (
        Source::parse(source).unwrap(),
        EventId::parse(id, "id").unwrap(),
    );
    run_blocking(move || store.forward_state(&source, &id))
        .await
        .unwrap()
}

/// Polls `done` until it holds, failing the test after `PATIENCE`.
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while !done().await {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_for_state(store: &Arc<dyn Store>, source: &str, id: &str, want: &str) -> ForwardInfo {
    wait_for_forward(store, source, id, |s| s.state == want).await
}

/// Polls the event's forwarding state until `done` holds, and returns it.
async fn wait_for_forward(
    store: &Arc<dyn Store>,
    source: &str,
    id: &str,
    done: impl Fn(&ForwardInfo) -> bool,
) -> ForwardInfo {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = state(store, source, id).await;
        match found {
            Some(found) if done(&found) => return found,
            other => assert!(
                Instant::now() < deadline,
                "waited {PATIENCE:?} for {source}/{id}; last {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn standard_signature(secret: &str, id: &str, timestamp: &str, body: &[u8]) -> String {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    base64::engine::general_purpose::STANDARD.encode(common::hmac_sha256(&key, &message))
}

// ---------------------------------------------------------------------------------------
// Cases
// ---------------------------------------------------------------------------------------

async fn forwards_the_stored_body_byte_for_byte_with_standard_webhooks_headers(db: &TestDb) {
    let target = TestApp::start().await;
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(3));

    // Odd spacing, key order and number notation: what arrives must be these bytes.
    let body =
        "{ \"type\" : \"order.created\",\n  \"id\":\"evt 1/ü\", \"amount\": 15.00 ,\"z\":[1,2] }";
    let reply = post(&app, "/webhooks/shop", &[], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let webhook_event_id = reply.body["webhook_event_id"].as_i64().unwrap();
    let delivered = wait_for_state(&db.store, "shop", "evt 1/ü", "delivered").await;
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.last_status, Some(200));
    assert!(delivered.delivered_at.is_some());

    let received = target.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.body.as_ref(), body.as_bytes(), "byte for byte");
    let id = format!("hl_{webhook_event_id}");
    assert_eq!(request.header("webhook-id"), id);
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.header("x-hooklatch-source"), "shop");
    assert_eq!(request.header("x-hooklatch-event-id"), "evt%201%2F%C3%BC");
    assert_eq!(request.header("x-hooklatch-event-type"), "order.created");
    let timestamp = request.header("webhook-timestamp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((timestamp.parse::<i64>().unwrap() - now).abs() < 300);
    // Verified the way every Standard Webhooks library does: any v1 entry matching.
    let expected = standard_signature(SECRET, &id, timestamp, &request.body);
    let signatures = request.header("webhook-signature");
    assert!(
        signatures
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .any(|s| s == expected),
        "{signatures} does not verify"
    );
    worker.stop().await;
}

async fn duplicates_conflicts_and_refused_deliveries_are_never_forwarded(db: &TestDb) {
    let target = TestApp::start().await;
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(3));

    let first = post(&app, "/webhooks/shop", &[], r#"{"id":"a","n":1}"#).await;
    assert_eq!(first.status, StatusCode::OK);
    let duplicate = post(&app, "/webhooks/shop", &[], r#"{"n":1, "id":"a"}"#).await;
    assert_eq!(duplicate.status, StatusCode::ACCEPTED);
    assert_eq!(duplicate.body["status"], "accepted");
    let conflict = post(&app, "/webhooks/shop", &[], r#"{"id":"a","n":2}"#).await;
    assert_eq!(conflict.status, StatusCode::ACCEPTED);
    assert_eq!(conflict.body["status"], "conflict");
    let refused = post(&app, "/webhooks/signed", &[], r#"{"id":"r"}"#).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let last = post(&app, "/webhooks/shop", &[], r#"{"id":"b"}"#).await;
    assert_eq!(last.status, StatusCode::OK);
    let elsewhere = post(&app, "/webhooks/acme", &[], r#"{"id":"x"}"#).await;
    assert_eq!(
        elsewhere.status,
        StatusCode::OK,
        "a source without forward_to"
    );

    wait_for_state(&db.store, "shop", "a", "delivered").await;
    wait_for_state(&db.store, "shop", "b", "delivered").await;
    let store = db.store.clone();
    let backlog = run_blocking(move || store.forward_backlog()).await.unwrap();
    assert_eq!((backlog.pending, backlog.failed), (0, 0));
    assert_eq!(backlog.oldest_pending_secs, None);
    let mut ids: Vec<String> = target
        .received()
        .iter()
        .map(|r| r.header("x-hooklatch-event-id").to_owned())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b"], "only the two processed events");
    assert_eq!(state(&db.store, "signed", "r").await, None);
    assert_eq!(
        state(&db.store, "acme", "x").await,
        None,
        "acme does not forward"
    );
    assert!(
        target
            .received()
            .iter()
            .all(|r| r.headers.get("x-hooklatch-event-type").is_none()),
        "no event type, no header"
    );
    worker.stop().await;
}

async fn a_sale_and_a_conversion_delivery_are_forwarded_like_any_event(db: &TestDb) {
    let target = TestApp::start().await;
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(3));
    // A seed-style sale (its conversion keyed by the event) and a Refersion conversion
    // delivery (keyed by the conversion id) take different paths through the store.
    let sale = post(&app, "/webhooks/refersion", &[], common::SEED).await;
    assert_eq!(sale.status, StatusCode::OK, "{:?}", sale.body);
    let conversion = r#"{"id":987654321,"status":"PENDING","total":"59.00","commission_total":"5.90","currency":"USD","updated":"2026-11-28 20:07:39"}"#;
    let topic = [("Refersion-Topic", "NEW_CONVERSION")];
    let delivered = post(&app, "/webhooks/refersion", &topic, conversion).await;
    assert_eq!(delivered.status, StatusCode::OK, "{:?}", delivered.body);
    wait_for_state(&db.store, "refersion", "ref_evt_123456", "delivered").await;
    wait_for_state(
        &db.store,
        "refersion",
        "NEW_CONVERSION:987654321",
        "delivered",
    )
    .await;
    let mut bodies: Vec<Vec<u8>> = target.received().iter().map(|r| r.body.to_vec()).collect();
    bodies.sort();
    let mut sent = vec![
        common::SEED.as_bytes().to_vec(),
        conversion.as_bytes().to_vec(),
    ];
    sent.sort();
    assert_eq!(bodies, sent);
    worker.stop().await;
}

async fn retries_until_a_2xx_with_the_same_webhook_id(db: &TestDb) {
    let target = TestApp::start().await;
    target.script(&[
        Answer::Status(500),
        Answer::Status(500),
        Answer::Status(200),
    ]);
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(5));

    let reply = post(&app, "/webhooks/shop", &[], r#"{"id":"retry-me"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let delivered = wait_for_state(&db.store, "shop", "retry-me", "delivered").await;
    assert_eq!(delivered.attempts, 3, "attempts counts every attempt");
    assert_eq!(delivered.last_status, Some(200));

    let id = format!("hl_{}", reply.body["webhook_event_id"]);
    let received = target.for_id(&id);
    assert_eq!(received.len(), 3, "two failures and the delivery");
    assert!(
        received
            .iter()
            .all(|r| r.body.as_ref() == br#"{"id":"retry-me"}"#)
    );
    let metrics = hooklatch::metrics::render();
    for line in [
        r#"hooklatch_forward_attempts_total{source="shop",result="failed_attempt"}"#,
        r#"hooklatch_forward_attempts_total{source="shop",result="delivered"}"#,
        "hooklatch_forward_pending ",
        "hooklatch_forward_oldest_pending_seconds ",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    worker.stop().await;
}

async fn a_redirect_is_a_failed_attempt_and_is_not_followed(db: &TestDb) {
    let target = TestApp::start().await;
    target.script(&[Answer::Status(307)]);
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(5));
    let reply = post(&app, "/webhooks/shop", &[], r#"{"id":"moved"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    let delivered = wait_for_state(&db.store, "shop", "moved", "delivered").await;
    assert_eq!(delivered.attempts, 2, "the 307, then the 200 of the retry");
    assert_eq!(target.received().len(), 2, "nothing else was sent anywhere");
    worker.stop().await;
}

async fn gives_up_after_max_attempts_then_an_operator_retry_delivers(db: &TestDb) {
    let target = TestApp::start().await;
    target.otherwise(503);
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(2));

    for id in ["g1", "g2"] {
        let body = format!(r#"{{"id":"{id}"}}"#);
        assert_eq!(
            post(&app, "/webhooks/shop", &[], &body).await.status,
            StatusCode::OK
        );
    }
    let failed = wait_for_state(&db.store, "shop", "g1", "failed").await;
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.last_status, Some(503));
    assert_eq!(
        failed.last_error.as_deref(),
        Some("HTTP 503 Service Unavailable")
    );
    wait_for_state(&db.store, "shop", "g2", "failed").await;
    assert_eq!(
        target.received().len(),
        4,
        "two attempts each, then nothing"
    );
    let store = db.store.clone();
    let backlog = run_blocking(move || store.forward_backlog()).await.unwrap();
    assert_eq!((backlog.pending, backlog.failed), (0, 2));
    assert!(
        hooklatch::metrics::render()
            .contains(r#"hooklatch_forward_attempts_total{source="shop",result="gave_up"}"#)
    );

    // The app recovers; the operator queues one event from the admin API...
    target.otherwise(200);
    // The real route, behind the token (issue 17 item 10: the test used to drive a
    // public, unauthenticated copy of it).
    let requeue = |path: &'static str, token: Option<&'static str>| {
        let app = app.clone();
        async move {
            let mut request = warp::test::request().method("POST").path(path);
            if let Some(token) = token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            common::request(&app, request).await
        }
    };
    for token in [None, Some("not-the-admin-token-000")] {
        let refused = requeue("/admin/api/events/shop/g1/forward", token).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{token:?}");
    }
    assert_eq!(
        state(&db.store, "shop", "g1").await.unwrap().state,
        "failed",
        "nothing queued without the token"
    );
    let answer = requeue("/admin/api/events/shop/g1/forward", Some(ADMIN_TOKEN)).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(answer.body["status"], "queued");
    let delivered = wait_for_state(&db.store, "shop", "g1", "delivered").await;
    assert_eq!(delivered.attempts, 1, "a requeue starts a fresh schedule");
    assert_eq!(
        state(&db.store, "shop", "g2").await.unwrap().state,
        "failed"
    );

    // ...and every other failed one from the command line.
    let store = db.store.clone();
    let printed = run_blocking(move || {
        Ok(hooklatch::cli::forward::run(
            store.as_ref(),
            &hooklatch::cli::ForwardCommand::Retry {
                source: None,
                failed: true,
            },
        ))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(printed, "1 failed forwards queued again");
    wait_for_state(&db.store, "shop", "g2", "delivered").await;

    // Unknown events and sources that do not forward are told apart.
    for (path, status) in [
        ("/admin/api/events/shop/nope/forward", StatusCode::NOT_FOUND),
        ("/admin/api/events/acme/g1/forward", StatusCode::CONFLICT),
    ] {
        let answer = requeue(path, Some(ADMIN_TOKEN)).await;
        assert_eq!(answer.status, status, "{path}");
    }
    worker.stop().await;
}

async fn a_hanging_app_is_a_failed_attempt_and_webhooks_are_answered_meanwhile(db: &TestDb) {
    let target = TestApp::start().await;
    target.script(&[Answer::Hang]);
    let app = app_on(db.store.clone(), db, &target);
    let options = ForwardConfig {
        timeout: Duration::from_millis(300),
        // Long enough that the retry cannot come before the checks below.
        retry_initial: Duration::from_secs(600),
        retry_max: Duration::from_secs(600),
        ..fast(3)
    };
    let worker = start_worker(&app, options);

    assert_eq!(
        post(&app, "/webhooks/shop", &[], r#"{"id":"slow"}"#)
            .await
            .status,
        StatusCode::OK
    );
    wait_for("the app to hold the forward", || async {
        target.hanging() == 1
    })
    .await;
    // While the app holds the forward, webhooks are still answered.
    let reply = post(&app, "/webhooks/shop", &[], r#"{"id":"meanwhile"}"#).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        target.hanging(),
        1,
        "answered while the app was still blocked"
    );

    let timed_out = wait_for_forward(&db.store, "shop", "slow", |s| s.attempts == 1).await;
    assert_eq!(
        timed_out.state, "pending",
        "a timeout is a failed attempt, retried later"
    );
    assert_eq!(timed_out.last_status, None);
    assert!(
        timed_out
            .last_error
            .as_deref()
            .unwrap()
            .contains("forward_timeout"),
        "{timed_out:?}"
    );
    target.release();
    worker.stop().await;
}

async fn a_leased_entry_is_claimed_by_no_one_else_until_the_lease_expires(db: &TestDb) {
    let target = TestApp::start().await;
    // No worker: the test claims by hand, as two instances would.
    let app = app_on(db.store.clone(), db, &target);
    assert_eq!(
        post(&app, "/webhooks/shop", &[], r#"{"id":"l"}"#)
            .await
            .status,
        StatusCode::OK
    );
    let (one, other) = (db.store.clone(), second_instance(db));
    let claimed = run_blocking(move || one.claim_forwards("one", Duration::from_millis(300), 10))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event_id, "l");
    assert_eq!(claimed[0].payload.as_deref(), Some(r#"{"id":"l"}"#));
    assert_eq!(claimed[0].attempts, 0);
    let again = other.clone();
    let meanwhile =
        run_blocking(move || again.claim_forwards("other", Duration::from_secs(60), 10))
            .await
            .unwrap();
    assert!(meanwhile.is_empty(), "held by a live lease");
    // The first owner dies without recording: its lease runs out and the entry returns.
    wait_for("the lease to expire", || {
        let other = other.clone();
        async move {
            run_blocking(move || other.claim_forwards("other", Duration::from_secs(60), 10))
                .await
                .unwrap()
                .len()
                == 1
        }
    })
    .await;
    // The dead owner's late record is ignored: the entry belongs to the other now.
    let (store, id) = (db.store.clone(), claimed[0].webhook_event_id);
    run_blocking(move || {
        store.record_forward(
            id,
            "one",
            &hooklatch::model::outbox::AttemptReport::of(
                hooklatch::model::outbox::AttemptOutcome::Delivered { status: 200 },
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        state(&db.store, "shop", "l").await.unwrap().state,
        "pending"
    );
}

async fn no_more_than_forward_concurrency_attempts_are_in_flight(db: &TestDb) {
    let target = TestApp::start().await;
    target.script(&[Answer::Hang; 5]);
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(
        &app,
        ForwardConfig {
            concurrency: 2,
            timeout: Duration::from_secs(600),
            ..fast(3)
        },
    );
    for n in 0..5 {
        let body = format!(r#"{{"id":"c{n}"}}"#);
        assert_eq!(
            post(&app, "/webhooks/shop", &[], &body).await.status,
            StatusCode::OK
        );
    }
    wait_for("two forwards held by the app", || async {
        target.hanging() == 2
    })
    .await;
    // The worker holds exactly two leases: the other three are still free to claim.
    let other = second_instance(db);
    let unclaimed =
        run_blocking(move || other.claim_forwards("other", Duration::from_secs(60), 10))
            .await
            .unwrap();
    assert_eq!(unclaimed.len(), 3, "{unclaimed:?}");
    // All five wait: the gauge an operator alerts on sees them, the oldest first.
    let store = db.store.clone();
    let backlog = run_blocking(move || store.forward_backlog()).await.unwrap();
    assert_eq!(backlog.pending, 5);
    let oldest = backlog
        .oldest_pending_secs
        .expect("an age while entries wait");
    assert!((0.0..600.0).contains(&oldest), "{oldest}");
    target.release();
    worker.stop().await;
}

async fn the_retry_command_queues_failed_forwards_and_refuses_to_guess(db: &TestDb) {
    let target = TestApp::start().await;
    target.otherwise(500);
    let app = app_on(db.store.clone(), db, &target);
    let worker = start_worker(&app, fast(1));
    assert_eq!(
        post(&app, "/webhooks/shop", &[], r#"{"id":"cli"}"#)
            .await
            .status,
        StatusCode::OK
    );
    wait_for_state(&db.store, "shop", "cli", "failed").await;
    worker.stop().await;

    let url = db.url.to_string();
    let run = move |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hooklatch"))
            .args(["forward", "retry", "--database-url", &url])
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("HOOKLATCH_CONFIG")
            .env("RUST_LOG", "warn")
            .output()
            .expect("run hooklatch");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    };
    let (guess, stdout, stderr) = {
        let run = run.clone();
        tokio::task::spawn_blocking(move || run(&[])).await.unwrap()
    };
    assert_eq!(guess, Some(1), "{stdout} {stderr}");
    assert!(stderr.contains("--failed"), "{stderr}");
    let (code, stdout, stderr) =
        tokio::task::spawn_blocking(move || run(&["--failed", "--source", "shop"]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "1 failed forwards of shop queued again");
    assert_eq!(
        state(&db.store, "shop", "cli").await.unwrap().state,
        "pending"
    );
}

// ---------------------------------------------------------------------------------------
// Looking after the app (SPEC §6.1)
// ---------------------------------------------------------------------------------------

/// An app with the admin side on, forwarding `shop` (and `typed`, `untyped`, with
/// `forward_types`) to `target`, alerting to `alerts` when given; `tweak` adjusts the
/// `shop` source.
fn care_app(
    store: Arc<dyn Store>,
    db: &TestDb,
    target: &TestApp,
    alerts: Option<&TestApp>,
    tweak: impl FnOnce(&mut SourceSettings),
) -> Arc<App> {
    let mut config: Config = db.config();
    let mut shop = SourceSettings {
        forward_to: Some(target.url()),
        ..SourceSettings::new(Preset::Standard, Vec::new())
    };
    tweak(&mut shop);
    config.sources.insert("shop", shop);
    config.sources.insert(
        "typed",
        SourceSettings {
            forward_to: Some(target.url()),
            forward_types: Some(vec!["orders/*".into(), "NEW_CONVERSION".into()]),
            ..SourceSettings::new(Preset::Standard, Vec::new())
        },
    );
    config.sources.insert(
        "untyped",
        SourceSettings {
            forward_to: Some(target.url()),
            forward_types: Some(vec!["*".into()]),
            ..SourceSettings::new(Preset::Standard, Vec::new())
        },
    );
    config.forward = care_options(alerts, 5);
    Arc::new(App::new(store, &config).with_admin_token(common::ADMIN_TOKEN))
}

/// `fast(max_attempts)` alerting to `alerts`, signed.
fn care_options(alerts: Option<&TestApp>, max_attempts: u32) -> ForwardConfig {
    ForwardConfig {
        alert_to: alerts.map(TestApp::url),
        ..fast(max_attempts)
    }
}

async fn api_get(app: &Arc<App>, path: &str) -> serde_json::Value {
    let reply = common::admin_get(app, path, Some(common::ADMIN_TOKEN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {:?}", reply.body);
    reply.body
}

async fn api_post(app: &Arc<App>, path: &str, body: &str) -> common::Reply {
    common::request(
        app,
        warp::test::request()
            .method("POST")
            .path(path)
            .header("authorization", format!("Bearer {}", common::ADMIN_TOKEN))
            .body(body),
    )
    .await
}

/// The forwarding list's row for `source`.
async fn forwarding_row(app: &Arc<App>, source: &str) -> serde_json::Value {
    let list = api_get(app, "/admin/api/forwarding").await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["source"] == source)
        .unwrap_or_else(|| panic!("{source} not in {list}"))
        .clone()
}

async fn send(app: &Arc<App>, source: &str, body: &str) -> serde_json::Value {
    let reply = post(app, &format!("/webhooks/{source}"), &[], body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.body
}

async fn forward_types_decide_which_new_events_get_an_outbox_entry(db: &TestDb) {
    let target = TestApp::start().await;
    let app = care_app(db.store.clone(), db, &target, None, |_| {});
    let worker = start_worker(&app, fast(3));
    send(&app, "typed", r#"{"id":"o1","type":"orders/create"}"#).await;
    send(&app, "typed", r#"{"id":"c1","type":"customers/create"}"#).await;
    send(&app, "typed", r#"{"id":"n1","type":"NEW_CONVERSION"}"#).await;
    send(&app, "typed", r#"{"id":"n2","type":"NEW_CONVERSIONS"}"#).await;
    send(&app, "typed", r#"{"id":"u1"}"#).await;
    send(&app, "untyped", r#"{"id":"u2"}"#).await;
    send(&app, "shop", r#"{"id":"any","type":"whatever"}"#).await;
    for (source, id) in [
        ("typed", "o1"),
        ("typed", "n1"),
        ("untyped", "u2"),
        ("shop", "any"),
    ] {
        wait_for_state(&db.store, source, id, "delivered").await;
    }
    for id in ["c1", "n2", "u1"] {
        assert_eq!(
            state(&db.store, "typed", id).await,
            None,
            "{id} gets no entry"
        );
        let detail = api_get(&app, &format!("/admin/api/events/typed/{id}")).await;
        assert!(detail["forward"].is_null(), "{detail}");
    }
    let mut sent: Vec<String> = target
        .received()
        .iter()
        .map(|r| r.header("x-hooklatch-event-id").to_owned())
        .collect();
    sent.sort();
    assert_eq!(sent, ["any", "n1", "o1", "u2"]);
    worker.stop().await;
}

async fn history_keeps_each_attempt_with_its_answer_newest_first(db: &TestDb) {
    let target = TestApp::start().await;
    target.script(&[Answer::Reply {
        status: 500,
        body: r#"{"error":"database is down"}"#,
        retry_after: None,
    }]);
    let app = care_app(db.store.clone(), db, &target, None, |_| {});
    let worker = start_worker(&app, fast(5));
    send(&app, "shop", r#"{"id":"h1"}"#).await;
    wait_for_state(&db.store, "shop", "h1", "delivered").await;
    worker.stop().await;

    let detail = api_get(&app, "/admin/api/events/shop/h1").await;
    let history = detail["forward"]["history"].as_array().unwrap().clone();
    assert_eq!(history.len(), 2, "{detail}");
    let (last, first) = (&history[0], &history[1]);
    assert_eq!(last["status"], 200);
    assert_eq!(last["error"], serde_json::Value::Null);
    assert_eq!(last["response"], "{}");
    assert_eq!(first["status"], 500);
    assert_eq!(first["error"], "HTTP 500 Internal Server Error");
    assert_eq!(first["response"], r#"{"error":"database is down"}"#);
    for attempt in &history {
        assert!(attempt["duration_ms"].as_i64().unwrap() >= 0, "{attempt}");
        let at = attempt["at"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() == 27, "{at}");
    }
    assert!(
        first["at"].as_str().unwrap() < last["at"].as_str().unwrap(),
        "newest first: {history:?}"
    );
    // The list shows the state, not the history.
    let list = api_get(&app, "/admin/api/events?source=shop").await;
    assert!(
        list["items"][0]["forward"].get("history").is_none(),
        "{list}"
    );
}

async fn history_is_capped_at_20_attempts_and_1_kib_per_answer(db: &TestDb) {
    let target = TestApp::start().await;
    let long: &'static str =
        Box::leak(format!("{}é{}", "a".repeat(1000), "b".repeat(2000)).into_boxed_str());
    target.otherwise_answer(Answer::Reply {
        status: 502,
        body: long,
        retry_after: None,
    });
    let app = care_app(db.store.clone(), db, &target, None, |_| {});
    let worker = start_worker(
        &app,
        ForwardConfig {
            retry_initial: Duration::from_millis(5),
            retry_max: Duration::from_millis(10),
            ..fast(23)
        },
    );
    send(&app, "shop", r#"{"id":"cap"}"#).await;
    let failed = wait_for_state(&db.store, "shop", "cap", "failed").await;
    assert_eq!(failed.attempts, 23);
    worker.stop().await;
    let detail = api_get(&app, "/admin/api/events/shop/cap").await;
    let history = detail["forward"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 20, "the last 20 of 23 attempts");
    for attempt in history {
        let response = attempt["response"].as_str().unwrap();
        // The first 1 KiB: 1000 a, then the two bytes of é would cross byte 1024 only
        // after 22 b's, so the text is exactly the first 1024 bytes.
        assert_eq!(response.len(), 1024, "{}", response.len());
        assert!(response.starts_with(&"a".repeat(1000)));
    }
    let ats: Vec<&str> = history.iter().map(|a| a["at"].as_str().unwrap()).collect();
    let mut sorted = ats.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(ats, sorted, "newest first");
}

async fn retry_after_on_429_or_503_sets_the_next_attempt_at_most_retry_max_away(db: &TestDb) {
    let target = TestApp::start().await;
    target.script(&[
        Answer::Reply {
            status: 429,
            body: "slow down",
            retry_after: Some("30"),
        },
        Answer::Reply {
            status: 503,
            body: "maintenance",
            retry_after: Some("Fri, 31 Dec 9999 23:59:59 GMT"),
        },
    ]);
    let app = care_app(db.store.clone(), db, &target, None, |_| {});
    let options = ForwardConfig {
        retry_initial: Duration::from_millis(20),
        retry_max: Duration::from_secs(60),
        ..fast(5)
    };
    let worker = start_worker(&app, options.clone());
    send(&app, "shop", r#"{"id":"ra"}"#).await;
    let waiting = wait_for_forward(&db.store, "shop", "ra", |s| s.attempts == 1).await;
    worker.stop().await;
    // Not after the 20 ms backoff: no earlier than the 30 s the app asked for.
    let delay = seconds_between(
        &history_at(&app, "ra", 0).await,
        &waiting.next_attempt_at.unwrap(),
    );
    assert!(
        (29.0..=31.0).contains(&delay),
        "next attempt {delay} s after the 429"
    );
    assert_eq!(target.received().len(), 1);
    assert!(
        hooklatch::metrics::render()
            .contains(r#"hooklatch_forward_retry_after_total{source="shop"}"#)
    );

    // An HTTP date far away is capped at forward_retry_max.
    let store = db.store.clone();
    let (source, id) = (
        Source::parse("shop").unwrap(),
        EventId::parse("ra", "id").unwrap(),
    );
    run_blocking(move || store.requeue_forward(&source, &id))
        .await
        .unwrap();
    let capped = ForwardConfig {
        retry_max: Duration::from_secs(2),
        ..options
    };
    let worker = start_worker(&app, capped);
    let waiting = wait_for_forward(&db.store, "shop", "ra", |s| {
        s.attempts == 1 && s.last_status == Some(503)
    })
    .await;
    worker.stop().await;
    let delay = seconds_between(
        &history_at(&app, "ra", 0).await,
        &waiting.next_attempt_at.unwrap(),
    );
    assert!((1.0..=2.5).contains(&delay), "capped at 2 s: {delay}");
}

/// The start of the event's `index`-th newest attempt.
async fn history_at(app: &Arc<App>, id: &str, index: usize) -> String {
    let detail = api_get(app, &format!("/admin/api/events/shop/{id}")).await;
    detail["forward"]["history"][index]["at"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn seconds_between(from: &str, to: &str) -> f64 {
    use time::format_description::well_known::Rfc3339;
    let from = time::OffsetDateTime::parse(from, &Rfc3339).unwrap();
    let to = time::OffsetDateTime::parse(to, &Rfc3339).unwrap();
    (to - from).as_seconds_f64()
}

async fn forward_rate_is_honoured_by_the_arrival_times_at_the_app(db: &TestDb) {
    let target = TestApp::start().await;
    // 5 per second: starts at least 200 ms apart.
    let app = care_app(db.store.clone(), db, &target, None, |shop| {
        shop.forward_every = Some(Duration::from_millis(200));
    });
    for n in 0..6 {
        send(&app, "shop", &format!(r#"{{"id":"r{n}"}}"#)).await;
    }
    // Every entry is due before the worker starts, and four slots could send at once.
    let worker = start_worker(&app, fast(3));
    for n in 0..6 {
        wait_for_state(&db.store, "shop", &format!("r{n}"), "delivered").await;
    }
    worker.stop().await;
    let mut arrivals: Vec<Instant> = target.received().iter().map(|r| r.at).collect();
    arrivals.sort();
    assert_eq!(arrivals.len(), 6);
    let span = arrivals[5] - arrivals[0];
    assert!(
        span >= Duration::from_millis(900),
        "6 starts 200 ms apart span 1 s, not {span:?}"
    );
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        // Arrival jitter aside, never two at once.
        assert!(
            gap >= Duration::from_millis(100),
            "{gap:?} between two arrivals"
        );
    }
    for window in arrivals.windows(6) {
        assert!(
            window[5] - window[0] >= Duration::from_millis(900),
            "6 within a second"
        );
    }
}

async fn consecutive_failures_pause_the_source_and_alert_once_per_incident(db: &TestDb) {
    let target = TestApp::start().await;
    target.otherwise(500);
    let alerts = TestApp::start().await;
    let app = care_app(db.store.clone(), db, &target, Some(&alerts), |shop| {
        shop.forward_pause_after = Some(3);
        // The forward_to shows only its scheme, host and port.
        shop.forward_to = Some(format!("http://user:pw@{}/hooks?token=secret", target.addr));
    });
    let worker = start_worker(&app, care_options(Some(&alerts), 50));
    send(&app, "shop", r#"{"id":"p1"}"#).await;
    send(&app, "shop", r#"{"id":"p2"}"#).await;
    wait_for("the source to pause", || {
        let app = app.clone();
        async move { forwarding_row(&app, "shop").await["state"] == "paused" }
    })
    .await;
    wait_for("the alert", || async { !alerts.received().is_empty() }).await;

    // Paused: entries stay pending, nothing is given up, and no worker can claim them.
    for id in ["p1", "p2"] {
        assert_eq!(state(&db.store, "shop", id).await.unwrap().state, "pending");
    }
    let other = db.store.clone();
    let claimable =
        run_blocking(move || other.claim_forwards("other", Duration::from_secs(60), 10))
            .await
            .unwrap();
    assert!(claimable.is_empty(), "{claimable:?}");
    let row = forwarding_row(&app, "shop").await;
    assert_eq!(row["destination"], format!("http://{}", target.addr));
    assert!(row["consecutive_failures"].as_i64().unwrap() >= 3, "{row}");
    assert!(row["paused_at"].is_string(), "{row}");
    assert_eq!(
        (row["pending"].as_i64(), row["failed"].as_i64()),
        (Some(2), Some(0))
    );
    // A paused source's deliveries are still recorded and answered.
    send(&app, "shop", r#"{"id":"p3"}"#).await;
    assert_eq!(
        state(&db.store, "shop", "p3").await.unwrap().state,
        "pending"
    );
    assert!(
        hooklatch::metrics::render().contains("hooklatch_forward_paused_sources"),
        "the gauge exists"
    );

    let alert = &alerts.received()[0];
    let body: serde_json::Value = serde_json::from_slice(&alert.body).unwrap();
    assert_eq!(body["type"], "forwarding.paused");
    assert_eq!(body["source"], "shop");
    assert_eq!(body["consecutive_failures"], 3);
    assert_eq!(body["last_error"], "HTTP 500 Internal Server Error");
    assert!(body["at"].is_string());
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains("shop") && text.contains("forward resume"),
        "{text}"
    );
    let expected = standard_signature(
        SECRET,
        alert.header("webhook-id"),
        alert.header("webhook-timestamp"),
        &alert.body,
    );
    assert_eq!(alert.header("webhook-signature"), format!("v1,{expected}"));

    // The app is fixed; the operator resumes: one resumed alert, and the backlog drains.
    target.otherwise(200);
    let resumed = api_post(&app, "/admin/api/forwarding/shop/resume", "").await;
    assert_eq!(resumed.status, StatusCode::OK, "{:?}", resumed.body);
    assert_eq!(resumed.body["state"], "active");
    assert_eq!(resumed.body["changed"], true);
    let again = api_post(&app, "/admin/api/forwarding/shop/resume", "").await;
    assert_eq!(
        again.body["changed"], false,
        "already active: no second alert"
    );
    for id in ["p1", "p2", "p3"] {
        wait_for_state(&db.store, "shop", id, "delivered").await;
    }
    wait_for("the resumed alert", || async {
        alerts.received().len() >= 2
    })
    .await;
    let kinds: Vec<String> = alerts
        .received()
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["forwarding.paused", "forwarding.resumed"],
        "once per incident"
    );
    assert_eq!(
        forwarding_row(&app, "shop").await["consecutive_failures"],
        0
    );

    // Paused by hand: no attempts until resumed.
    let paused = api_post(&app, "/admin/api/forwarding/shop/pause", "").await;
    assert_eq!(paused.body["state"], "paused");
    let elsewhere = api_post(&app, "/admin/api/forwarding/acme/pause", "").await;
    assert_eq!(
        elsewhere.status,
        StatusCode::CONFLICT,
        "acme does not forward"
    );
    let unknown = api_post(&app, "/admin/api/forwarding/shop/explode", "").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let not_forwarding = api_post(
        &app,
        "/admin/api/forwarding/acme/replay",
        r#"{"since":"2026-01-01T00:00:00Z"}"#,
    )
    .await;
    assert_eq!(not_forwarding.status, StatusCode::CONFLICT);
    worker.stop().await;
}

async fn a_pause_survives_a_restart(db: &TestDb) {
    let target = TestApp::start().await;
    let app = care_app(db.store.clone(), db, &target, None, |_| {});
    let paused = api_post(&app, "/admin/api/forwarding/shop/pause", "").await;
    assert_eq!(paused.status, StatusCode::OK, "{:?}", paused.body);
    assert_eq!(paused.body["changed"], true);
    drop(app);

    // A new process on the same store: still paused, its worker sends nothing.
    let restarted = care_app(db.reopen(), db, &target, None, |_| {});
    assert_eq!(forwarding_row(&restarted, "shop").await["state"], "paused");
    let worker = start_worker(&restarted, fast(3));
    send(&restarted, "shop", r#"{"id":"kept"}"#).await;
    let store = restarted.store.clone();
    let claimable = run_blocking(move || store.claim_forwards("x", Duration::from_secs(60), 10))
        .await
        .unwrap();
    assert!(claimable.is_empty());
    assert_eq!(
        state(&db.store, "shop", "kept").await.unwrap().state,
        "pending"
    );
    let resumed = api_post(&restarted, "/admin/api/forwarding/shop/resume", "").await;
    assert_eq!(resumed.body["changed"], true);
    wait_for_state(&db.store, "shop", "kept", "delivered").await;
    assert_eq!(target.received().len(), 1);
    worker.stop().await;
}

async fn replay_by_window_carries_the_same_webhook_id(db: &TestDb) {
    let target = TestApp::start().await;
    let app = care_app(db.store.clone(), db, &target, None, |_| {});
    let worker = start_worker(&app, fast(3));
    let mut ids = Vec::new();
    for n in 0..3 {
        let reply = send(&app, "shop", &format!(r#"{{"id":"w{n}"}}"#)).await;
        ids.push(format!("hl_{}", reply["webhook_event_id"]));
        wait_for_state(&db.store, "shop", &format!("w{n}"), "delivered").await;
    }
    let seen = |n: usize| {
        let app = app.clone();
        async move {
            api_get(&app, &format!("/admin/api/events/shop/w{n}")).await["first_seen_at"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    let (since, until) = (seen(1).await, seen(2).await);
    let replayed = api_post(
        &app,
        "/admin/api/forwarding/shop/replay",
        &format!(r#"{{"since":"{since}","until":"{until}"}}"#),
    )
    .await;
    assert_eq!(replayed.status, StatusCode::ACCEPTED, "{:?}", replayed.body);
    assert_eq!(replayed.body["queued"], 1, "only w1 is in [since, until)");
    wait_for("w1 again", || async { target.for_id(&ids[1]).len() == 2 }).await;
    let again = target.for_id(&ids[1]);
    assert_eq!(again[1].body, again[0].body);
    assert_eq!(again[1].header("webhook-id"), ids[1], "the same webhook-id");
    // Without until: everything since.
    let all = api_post(
        &app,
        "/admin/api/forwarding/shop/replay",
        &format!(r#"{{"since":"{since}"}}"#),
    )
    .await;
    assert_eq!(all.body["queued"], 2);
    wait_for("w2 again", || async { target.for_id(&ids[2]).len() == 2 }).await;
    wait_for_state(&db.store, "shop", "w1", "delivered").await;
    assert_eq!(target.for_id(&ids[0]).len(), 1, "w0 is before the window");
    for (body, parameter) in [
        ("{}", "since"),
        (r#"{"since":"yesterday"}"#, "since"),
        (
            r#"{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}"#,
            "until",
        ),
        ("[", "body"),
    ] {
        let refused = api_post(&app, "/admin/api/forwarding/shop/replay", body).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            refused.body["message"]
                .as_str()
                .unwrap_or_default()
                .contains(parameter)
                || refused.body.to_string().contains(parameter),
            "{body}: {:?}",
            refused.body
        );
    }
    worker.stop().await;
}

async fn pause_resume_and_replay_from_the_command_line(db: &TestDb) {
    let target = TestApp::start().await;
    let alerts = TestApp::start().await;
    let app = care_app(db.store.clone(), db, &target, Some(&alerts), |_| {});
    let reply = send(&app, "shop", r#"{"id":"cli1"}"#).await;
    let since = api_get(&app, "/admin/api/events/shop/cli1").await["first_seen_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let (url, forward_to, alert_to) = (db.url.to_string(), target.url(), alerts.url());
    let run = move |args: Vec<String>| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_hooklatch"))
            .arg("forward")
            .args(&args)
            .args(["--database-url", &url])
            .env_remove("DATABASE_URL")
            .env_remove("HOOKLATCH_CONFIG")
            .env("HOOKLATCH_FORWARD_TO_SHOP", &forward_to)
            .env("HOOKLATCH_ALERT_TO", &alert_to)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run hooklatch");
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).trim().to_owned(),
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        )
    };
    let cli = |args: &[&str]| {
        let run = run.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || run(args))
    };
    let (code, stdout, stderr) = cli(&["pause", "shop"]).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "forwarding of shop paused");
    assert_eq!(
        alerts.received().len(),
        1,
        "the command sent its alert before exiting"
    );
    assert_eq!(forwarding_row(&app, "shop").await["state"], "paused");
    let (_, stdout, _) = cli(&["pause", "shop"]).await.unwrap();
    assert_eq!(stdout, "forwarding of shop was already paused");
    let (code, stdout, stderr) = cli(&["resume", "shop"]).await.unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "forwarding of shop resumed");
    assert_eq!(alerts.received().len(), 2);
    let (code, stdout, stderr) = cli(&["replay", "--source", "shop", "--since", &since])
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "1 forwards of shop queued again");
    let (code, _, stderr) = cli(&["replay", "--source", "acme", "--since", &since])
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("does not forward"), "{stderr}");
    let (code, _, stderr) = cli(&["replay", "--source", "shop", "--since", "Tuesday"])
        .await
        .unwrap();
    assert_eq!(code, Some(1));
    assert!(stderr.contains("--since"), "{stderr}");
    let worker = start_worker(&app, fast(3));
    wait_for_state(&db.store, "shop", "cli1", "delivered").await;
    let id = format!("hl_{}", reply["webhook_event_id"]);
    assert_eq!(target.for_id(&id).len(), 1);
    worker.stop().await;
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: one pause for every instance
// ---------------------------------------------------------------------------------------

#[test]
fn postgres_two_instances_honour_one_pause() {
    common::run_case(Backend::Postgres, "two_instances_pause", |db| {
        Box::pin(two_instances_pause(db))
    });
}

async fn two_instances_pause(db: &TestDb) {
    let target = TestApp::start().await;
    let alerts = TestApp::start().await;
    target.otherwise(500);
    let second_store = second_instance(db);
    let first = care_app(db.store.clone(), db, &target, Some(&alerts), |s| {
        s.forward_pause_after = Some(4);
    });
    let second = care_app(second_store.clone(), db, &target, Some(&alerts), |s| {
        s.forward_pause_after = Some(4);
    });
    let workers = [
        start_worker(&first, care_options(Some(&alerts), 50)),
        start_worker(&second, care_options(Some(&alerts), 50)),
    ];
    // Failures on both instances count toward one pause, alerted once.
    for n in 0..6 {
        let app = if n % 2 == 0 { &first } else { &second };
        send(app, "shop", &format!(r#"{{"id":"two-{n}"}}"#)).await;
    }
    wait_for("the shared pause", || {
        let app = second.clone();
        async move { forwarding_row(&app, "shop").await["state"] == "paused" }
    })
    .await;
    wait_for("the alert", || async { !alerts.received().is_empty() }).await;
    // Neither instance claims while paused.
    for store in [db.store.clone(), second_store.clone()] {
        let claimed = run_blocking(move || store.claim_forwards("x", Duration::from_secs(60), 50))
            .await
            .unwrap();
        assert!(claimed.is_empty());
    }
    target.otherwise(200);
    let resumed = api_post(&first, "/admin/api/forwarding/shop/resume", "").await;
    assert_eq!(resumed.body["changed"], true);
    for n in 0..6 {
        wait_for_state(&db.store, "shop", &format!("two-{n}"), "delivered").await;
    }
    wait_for("the resumed alert", || async {
        alerts.received().len() >= 2
    })
    .await;
    for worker in workers {
        worker.stop().await;
    }
    let kinds: Vec<String> = alerts
        .received()
        .iter()
        .map(|r| {
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        ["forwarding.paused", "forwarding.resumed"],
        "one alert per incident"
    );
    drop(second_store);
}

// ---------------------------------------------------------------------------------------
// PostgreSQL: several instances
// ---------------------------------------------------------------------------------------

#[test]
fn postgres_two_instances_deliver_each_of_fifty_events_exactly_once() {
    common::run_case(Backend::Postgres, "two_instances_forward", |db| {
        Box::pin(two_instances(db))
    });
}

async fn two_instances(db: &TestDb) {
    let target = TestApp::start().await;
    let second_store = second_instance(db);
    let first = app_on(db.store.clone(), db, &target);
    let second = app_on(second_store.clone(), db, &target);
    let workers = [
        start_worker(&first, fast(5)),
        start_worker(&second, fast(5)),
    ];
    // Each instance receives half, and each polls for the other's entries too.
    for n in 0..50 {
        let app = if n % 2 == 0 { &first } else { &second };
        let body = format!(r#"{{"id":"many-{n}"}}"#);
        assert_eq!(
            post(app, "/webhooks/shop", &[], &body).await.status,
            StatusCode::OK
        );
    }
    wait_for("50 deliveries", || async { target.received().len() >= 50 }).await;
    for n in 0..50 {
        wait_for_state(&db.store, "shop", &format!("many-{n}"), "delivered").await;
    }
    for worker in workers {
        worker.stop().await;
    }
    let mut ids: Vec<String> = target
        .received()
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    let total = ids.len();
    ids.dedup();
    assert_eq!(
        (total, ids.len()),
        (50, 50),
        "each event exactly once in total"
    );
    drop(second_store);
}

// ---------------------------------------------------------------------------------------
// SQLite: bookkeeping never lowers the durability of events
// ---------------------------------------------------------------------------------------

/// Leases and outcomes commit without an fsync; the connection they ran on is back at
/// `synchronous=FULL` afterwards, so the next event is as durable as ever.
#[test]
fn sqlite_outbox_bookkeeping_leaves_the_writer_at_full_durability() {
    use hooklatch::model::NewEvent;
    use hooklatch::model::outbox::AttemptOutcome;
    use hooklatch::store::{Outbox, SqliteStore, StoreOptions};

    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        // One connection: the writer and every read share it, so it is the one checked.
        pool_size: 1,
        ..StoreOptions::default()
    };
    let store = SqliteStore::open(&dir.path().join("hooklatch.db"), &options).unwrap();
    store.migrate().unwrap();
    let event = NewEvent {
        source: Source::parse("shop").unwrap(),
        event_id: EventId::parse("durable", "id").unwrap(),
        event_type: None,
        payload: r#"{"id":"durable"}"#.into(),
        fingerprint: "fp".into(),
        conversion: None,
        forward: true,
    };
    store.process(&event).unwrap();
    let jobs = store
        .claim_forwards("me", Duration::from_secs(60), 8)
        .unwrap();
    assert_eq!(jobs.len(), 1);
    store
        .record_forward(
            jobs[0].webhook_event_id,
            "me",
            &hooklatch::model::outbox::AttemptReport::of(AttemptOutcome::Delivered { status: 200 }),
        )
        .unwrap();
    let level: i64 = store
        .with_writer(|conn| {
            conn.pragma_query_value(None, "synchronous", |row| row.get(0))
                .map_err(|e| hooklatch::store::StoreError::Internal(e.to_string()))
        })
        .unwrap();
    assert_eq!(level, 2, "synchronous=FULL");
    let state = store
        .forward_state(&event.source, &event.event_id)
        .unwrap()
        .unwrap();
    assert_eq!((state.state.as_str(), state.attempts), ("delivered", 1));
}
