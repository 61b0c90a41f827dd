//! Hostile input: a property test that throws random requests at the HTTP layer, then the
//! specific attacks one by one: invalid UTF-8, hostile nesting, duplicate keys, huge and
//! slow bodies, and ids made of quotes, SQL, NUL and emoji.
//!
//! What holds for every request, whatever it is: no 5xx, no panic, a JSON answer with
//! `Content-Type: application/json`, and a refused request leaves the store unchanged.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Backend, TestDb, TestServer, Totals, fast_sqlite, post, raw_exchange, two_worker_runtime,
};
use hooklatch::App;
use hooklatch::config::Config;
use hooklatch::model::{EventId, Source};
use hooklatch::store::StoreOptions;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Map, Value, json};
use warp::http::{HeaderValue, StatusCode};

contract!(
    ids_with_quotes_sql_and_emoji_are_stored_and_deduplicated_exactly,
    ids_at_the_byte_limit_count_bytes_not_characters,
    nul_in_any_stored_text_is_400_on_every_backend,
);

// ---------------------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------------------

/// One random request.
#[derive(Debug, Clone)]
struct Hostile {
    method: &'static str,
    source: String,
    content_type: Option<String>,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
}

fn source_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::sample::select(vec!["refersion", "stripe", "shopify", "github", "acme"])
            .prop_map(str::to_owned),
        2 => "[a-z0-9_-]{1,64}",
        1 => "[A-Za-z0-9_.~-]{0,80}",
        1 => prop::sample::select(vec!["%2e%2e", "a%00b", "caf%C3%A9", "%2Fetc", "x%20y", "REFERSION"])
            .prop_map(str::to_owned),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(Some("application/json".to_owned())),
        1 => Just(Some("application/json; charset=utf-8".to_owned())),
        1 => Just(Some("Application/JSON ; charset=latin1".to_owned())),
        1 => Just(Some("text/plain".to_owned())),
        1 => Just(Some("application/jsonx".to_owned())),
        1 => Just(None),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

/// Strings with the characters that break naive code: quotes, backslashes, SQL, NUL,
/// control characters, emoji, and any other Unicode.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "\\PC{0,24}",
        2 => "[a-z0-9_-]{1,12}",
        1 => "[\"'\\\\;%_ ]{0,8}",
        1 => prop::sample::select(vec![
            "'; DROP TABLE webhook_events; --",
            "x' OR '1'='1",
            "\u{0}",
            "a\u{0}b",
            "\u{1F980}\u{1F525}",
            "\u{202E}reversed",
            "\r\n",
            "",
        ])
        .prop_map(str::to_owned),
        1 => "[\u{1F300}-\u{1F5FF}]{60,70}",
        1 => "[a-z]{250,260}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,12})?([eE][+-]?[0-9]{1,5})?"
            .prop_map(|text| serde_json::from_str(&text).expect("JSON number syntax")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        hostile_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(hostile_string(), inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects using the field names the sources read, with hostile values.
fn event_object() -> impl Strategy<Value = Value> {
    let field = prop::sample::select(vec![
        "id",
        "event_id",
        "event_type",
        "type",
        "order_id",
        "commission_amount",
        "sale_amount",
        "currency",
        "tracking_id",
        "pending_webhooks",
        "data",
    ]);
    let sale_value = prop_oneof![
        2 => json_value(),
        1 => Just(json!("sale")),
        1 => number(),
        1 => number().prop_map(|n| Value::String(n.to_string())),
        1 => prop::sample::select(vec!["usd", "EUR", "eu", "\u{0}ab"]).prop_map(Value::from),
    ];
    (
        prop::collection::btree_map(field, sale_value, 0..9),
        any::<bool>(),
        prop::option::of("[a-z0-9]{1,12}"),
    )
        .prop_map(|(fields, sale, plain_id)| {
            let mut object: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            if sale {
                object.insert("event_type".into(), json!("sale"));
            }
            // Often a usable id, so that deliveries get past the id checks to the store.
            if let Some(id) = plain_id {
                object.entry("id").or_insert_with(|| json!(id));
                object.entry("event_id").or_insert_with(|| json!(id));
            }
            Value::Object(object)
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => event_object().prop_map(|v| v.to_string().into_bytes()),
        1 => json_value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
        1 => "[\\[\\]{}\":,0-9a-z\\\\ .eE+-]{0,80}".prop_map(String::into_bytes),
        // A valid object followed by a byte that may break UTF-8 or the syntax.
        1 => (event_object(), any::<u8>()).prop_map(|(v, b)| {
            let mut bytes = v.to_string().into_bytes();
            let at = bytes.len() / 2;
            bytes.insert(at, b);
            bytes
        }),
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => "[ -~]{0,40}".prop_map(String::into_bytes),
        1 => "[!-~]{250,260}".prop_map(String::into_bytes),
        // obs-text: valid on the wire, not text.
        1 => prop::collection::vec(0x80u8..=0xff, 1..8),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let name = prop::sample::select(vec![
        "webhook-id",
        "Idempotency-Key",
        "X-Shopify-Event-Id",
        "X-Shopify-Webhook-Id",
        "X-Shopify-Topic",
        "X-GitHub-Delivery",
        "X-GitHub-Event",
        "Refersion-Topic",
        "Stripe-Signature",
        "webhook-signature",
        "webhook-timestamp",
        "Expect",
    ]);
    prop::collection::vec((name, header_value()), 0..4)
}

fn hostile_request() -> impl Strategy<Value = Hostile> {
    (
        prop_oneof![20 => Just("POST"), 1 => Just("GET"), 1 => Just("PUT")],
        source_name(),
        content_type(),
        headers(),
        body(),
    )
        .prop_map(|(method, source, content_type, headers, body)| Hostile {
            method,
            source,
            content_type,
            headers,
            body,
        })
}

/// At the durability a real deployment runs with: SQLite at `synchronous=FULL` (the
/// default), and PostgreSQL.
#[test]
fn random_requests_never_get_a_5xx_always_get_json_and_change_nothing_when_refused_on_sqlite() {
    let options = StoreOptions::default();
    assert!(options.sqlite_full_sync, "the default is FULL");
    let db = TestDb::fresh_with(Backend::Sqlite, "proptest", &options)
        .expect("SQLite is always available");
    random_requests_never_get_a_5xx(&db);
}

#[test]
fn random_requests_never_get_a_5xx_always_get_json_and_change_nothing_when_refused_on_postgres() {
    let Some(db) = TestDb::fresh(Backend::Postgres, "proptest") else {
        return;
    };
    random_requests_never_get_a_5xx(&db);
}

/// 600 random requests: never a 5xx, always JSON, and a refused one changes no row.
fn random_requests_never_get_a_5xx(db: &TestDb) {
    let app = db.app();
    let rt = two_worker_runtime();
    let filter = hooklatch::routes(app.clone());
    let outcomes = std::sync::Mutex::new(std::collections::BTreeMap::<u16, usize>::new());
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 600,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&hostile_request(), |case| {
            let mut request = warp::test::request()
                .method(case.method)
                .path(&format!("/webhooks/{}", case.source))
                .body(case.body.clone());
            if let Some(content_type) = &case.content_type {
                request = request.header("content-type", content_type.as_str());
            }
            for (name, value) in &case.headers {
                request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
            }
            let before = db.totals();
            let response = rt.block_on(request.reply(&filter));
            let after = db.totals();
            let status = response.status();
            *outcomes.lock().unwrap().entry(status.as_u16()).or_default() += 1;

            prop_assert!(!status.is_server_error(), "{status}: {:?}", response.body());
            prop_assert_eq!(
                response
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/json")
            );
            let answer: Value = serde_json::from_slice(response.body())
                .map_err(|e| TestCaseError::fail(format!("{status}: not JSON: {e}")))?;
            prop_assert!(answer.is_object());
            match status {
                StatusCode::OK => {
                    let has_conversion = !answer["conversion_id"].is_null();
                    prop_assert_eq!(after.events, before.events + 1);
                    prop_assert_eq!(
                        after.conversions,
                        before.conversions + i64::from(has_conversion)
                    );
                    prop_assert_eq!(after.conflicts, before.conflicts);
                    let source = Source::parse(&case.source).unwrap();
                    let id = EventId::parse(answer["event_id"].as_str().unwrap(), "id").unwrap();
                    let stored = db.store.event(&source, &id).unwrap().unwrap();
                    prop_assert_eq!(
                        stored.payload.as_deref().map(str::as_bytes),
                        Some(&case.body[..]),
                        "the payload is kept byte for byte"
                    );
                }
                StatusCode::ACCEPTED => {
                    let conflict = answer["status"] == "conflict";
                    prop_assert_eq!(after.events, before.events);
                    prop_assert_eq!(after.conversions, before.conversions);
                    prop_assert_eq!(after.conflicts, before.conflicts + i64::from(conflict));
                }
                _ => {
                    prop_assert_eq!(after, before, "{}: {}", status, answer);
                    prop_assert!(answer["error"].is_string(), "{}", answer);
                    prop_assert!(answer["message"].is_string(), "{}", answer);
                }
            }
            Ok(())
        })
        .unwrap();
    // The generators must reach the store, or the property proves little.
    let outcomes = outcomes.into_inner().unwrap();
    assert!(
        outcomes.get(&200).copied().unwrap_or(0) >= 20,
        "{outcomes:?}"
    );
    assert!(
        outcomes.get(&400).copied().unwrap_or(0) >= 20,
        "{outcomes:?}"
    );
    eprintln!("hostile requests by status: {outcomes:?}");
}

// ---------------------------------------------------------------------------------------
// Specific attacks
// ---------------------------------------------------------------------------------------

/// Sends `body` as-is to `/webhooks/{source}` and returns status and JSON answer.
async fn send(app: &Arc<App>, source: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Reply {
    let mut request = warp::test::request()
        .method("POST")
        .path(&format!("/webhooks/{source}"))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, HeaderValue::from_bytes(value).unwrap());
    }
    let response = request.reply(&hooklatch::routes(app.clone())).await;
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    Reply {
        status: response.status().as_u16(),
        body: serde_json::from_slice(response.body()).expect("JSON answer"),
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
}

#[test]
fn invalid_utf8_in_the_body_or_an_id_header_is_400_and_stores_nothing() {
    let db = fast_sqlite("utf8");
    let rt = two_worker_runtime();
    rt.block_on(async {
        let app = db.app();
        let bodies: [&[u8]; 6] = [
            b"{\"id\":\"\xff\"}",
            b"{\"id\xc3\":\"x\"}",
            b"{\"id\":\"\xc0\xaf\"}",             // overlong '/'
            b"{\"id\":\"\xed\xa0\x80\"}",         // an encoded surrogate
            b"{\"id\":\"\\ud800\"}",              // a lone surrogate escape
            b"\xef\xbb\xbf{\"id\":\"with-bom\"}", // a byte-order mark
        ];
        for body in bodies {
            let reply = send(&app, "acme", &[], body).await;
            assert_eq!(reply.status, 400, "{body:?}: {}", reply.body);
            assert_eq!(reply.body["error"], "invalid_payload");
            assert_eq!(reply.body["field"], "body");
        }
        let reply = send(&app, "acme", &[("webhook-id", b"\xff\xfe")], b"{}").await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.body["field"], "webhook-id");
        assert_eq!(db.totals(), Totals::default());
    });
}

/// A body nested `depth` levels deep below a valid id, from `open`/`close` pieces.
fn nested(depth: usize, open: &str, close: &str) -> Vec<u8> {
    format!(
        "{{\"id\":\"deep\",\"a\":{}1{}}}",
        open.repeat(depth),
        close.repeat(depth)
    )
    .into_bytes()
}

#[test]
fn hostile_nesting_is_400_not_a_stack_overflow_and_modest_nesting_is_fine() {
    let db = fast_sqlite("nesting");
    let rt = two_worker_runtime();
    rt.block_on(async {
        let app = db.app();
        for (open, close) in [("[", "]"), ("{\"a\":", "}"), ("[{\"a\":", "}]")] {
            let reply = send(&app, "acme", &[], &nested(100_000, open, close)).await;
            assert_eq!(reply.status, 400, "{open}: {}", reply.body);
            assert!(
                reply.body["message"]
                    .as_str()
                    .unwrap()
                    .contains("nested too deeply"),
                "{}",
                reply.body
            );
        }
        // Unbalanced, so the parser must give up on depth before it finds the end.
        let unclosed = format!("{{\"id\":\"x\",\"a\":{}", "[".repeat(500_000)).into_bytes();
        let reply = send(&app, "acme", &[], &unclosed).await;
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(db.totals(), Totals::default());

        let fine = send(&app, "acme", &[], &nested(100, "[", "]")).await;
        assert_eq!(fine.status, 200, "{}", fine.body);
    });
    // And over a socket, where the handler runs on a runtime worker's stack.
    let server = rt.block_on(TestServer::start(db.app()));
    let body = nested(200_000, "[", "]");
    let head = format!(
        "POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let reply = raw_exchange(server.addr, head.as_bytes(), &body);
    assert_eq!(reply.status, 400, "{}", reply.body);
    rt.block_on(server.stop());
    assert_eq!(db.totals().events, 1);
}

#[test]
fn duplicate_keys_are_400_even_when_equal_only_after_unescaping() {
    let db = fast_sqlite("dupkeys");
    let rt = two_worker_runtime();
    rt.block_on(async {
        let app = db.app();
        let cases: [(&str, &str); 6] = [
            ("acme", r#"{"id":"a","id":"a"}"#),
            ("acme", r#"{"id":"a","\u0069d":"b"}"#),
            ("acme", r#"{"id":"a","data":{"k":1,"k":2}}"#),
            ("acme", r#"{"id":"a","list":[{},{"k":1,"\u006b":1}]}"#),
            (
                "refersion",
                r#"{"event_type":"sale","event_id":"d1","order_id":"o","commission_amount":1,"commission_amount":1000,"sale_amount":5}"#,
            ),
            ("stripe", r#"{"id":"evt_1","type":"a","type":"b"}"#),
        ];
        for (source, body) in cases {
            let reply = send(&app, source, &[], body.as_bytes()).await;
            assert_eq!(reply.status, 400, "{body}: {}", reply.body);
            assert!(
                reply.body["message"]
                    .as_str()
                    .unwrap()
                    .contains("duplicate key"),
                "{}",
                reply.body
            );
        }
        assert_eq!(db.totals(), Totals::default());
        // Equal keys in different objects are not duplicates.
        let fine = send(&app, "acme", &[], br#"{"id":"a","x":{"k":1},"y":{"k":1}}"#).await;
        assert_eq!(fine.status, 200, "{}", fine.body);
    });
}

/// A JSON object of about `size` bytes with the given id.
fn big_object(id: &str, size: usize) -> Vec<u8> {
    let filler = "x".repeat(size.saturating_sub(40));
    format!(r#"{{"id":"{id}","filler":"{filler}"}}"#).into_bytes()
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::new();
    for chunk in body.chunks(64 * 1024) {
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

fn head(content_length: Option<usize>) -> Vec<u8> {
    let framing = match content_length {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_owned(),
    };
    format!("POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n").into_bytes()
}

#[test]
fn ten_megabyte_bodies_are_413_under_the_default_limit_with_or_without_content_length() {
    let db = fast_sqlite("tenmb");
    let rt = two_worker_runtime();
    let server = rt.block_on(TestServer::start(db.app()));
    let body = big_object("huge", 10 * 1024 * 1024);
    for content_length in [Some(body.len()), None] {
        let framed = match content_length {
            Some(_) => body.clone(),
            None => chunked(&body),
        };
        let reply = raw_exchange(server.addr, &head(content_length), &framed);
        assert_eq!(reply.status, 413, "{content_length:?}: {}", reply.body);
        assert_eq!(reply.json()["error"], "payload_too_large");
    }
    // The server is unharmed.
    let ok = common::http_post(server.addr, "/webhooks/acme", &[], r#"{"id":"after"}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);
    rt.block_on(server.stop());
    assert_eq!(db.totals().events, 1);
}

#[test]
fn ten_megabyte_bodies_are_stored_byte_for_byte_when_the_operator_allows_them() {
    let db = fast_sqlite("tenmb_allowed");
    let rt = two_worker_runtime();
    let config = Config {
        max_body_bytes: 16 * 1024 * 1024,
        ..db.config()
    };
    let server = rt.block_on(TestServer::start(db.app_with(&config)));
    let body = big_object("huge", 10 * 1024 * 1024);
    let first = raw_exchange(server.addr, &head(Some(body.len())), &body);
    assert_eq!(first.status, 200, "{}", first.body);
    let again = raw_exchange(server.addr, &head(None), &chunked(&body));
    assert_eq!(again.status, 202, "{}", again.body);
    rt.block_on(server.stop());
    let stored = db
        .store
        .event(
            &Source::parse("acme").unwrap(),
            &EventId::parse("huge", "id").unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(stored.payload.unwrap().as_bytes(), &body[..]);
    assert_eq!(stored.delivery_count, 2);
}

#[test]
fn a_slow_loris_body_trickling_a_byte_at_a_time_gets_408_at_the_body_timeout() {
    let db = fast_sqlite("loris");
    let rt = two_worker_runtime();
    let config = Config {
        body_timeout: Duration::from_secs(1),
        ..db.config()
    };
    let server = rt.block_on(TestServer::start(db.app_with(&config)));
    let body = br#"{"id":"loris","padding":"..........................................................."}"#;
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    stream.write_all(&head(Some(body.len()))).unwrap();
    let started = Instant::now();
    let mut raw = Vec::new();
    // Each byte comes well within any per-read timeout; only a total body deadline
    // stops it, long before the body would be complete (about 9 s).
    for byte in body {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "no answer while the body trickles"
        );
    }
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.read_to_end(&mut raw);
    let reply = common::parse_reply(&raw);
    assert_eq!(reply.status, 408, "{}", reply.body);
    assert_eq!(reply.json()["error"], "request_timeout");
    assert!(started.elapsed() < Duration::from_secs(6));
    rt.block_on(server.stop());
    assert_eq!(db.totals(), Totals::default());
}

/// The classic slow-loris: a request head that never ends, a byte now and then. Without
/// a deadline on the head, each such client holds a connection (and a descriptor) for
/// ever; with one, the server hangs up (there is no request yet to answer).
#[test]
fn a_slow_loris_request_head_is_cut_off_at_the_body_timeout() {
    let db = fast_sqlite("loris_head");
    let rt = two_worker_runtime();
    let config = Config {
        body_timeout: Duration::from_secs(1),
        ..db.config()
    };
    let server = rt.block_on(TestServer::start(db.app_with(&config)));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
        .write_all(b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let closed = loop {
        if started.elapsed() > Duration::from_secs(8) {
            break false;
        }
        // One more byte of a header that never ends.
        if stream.write_all(b"X").is_err() {
            break true;
        }
        let mut buf = [0u8; 1024];
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "a never-ending request head still holds its connection"
    );
    assert!(
        !String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 2"),
        "{answer:?}"
    );
    // Other clients are served meanwhile and after.
    let ok = common::http_post(server.addr, "/webhooks/acme", &[], r#"{"id":"after"}"#);
    assert_eq!(ok.status, 200, "{}", ok.body);
    rt.block_on(server.stop());
}

// ---------------------------------------------------------------------------------------
// Ids, on both backends
// ---------------------------------------------------------------------------------------

/// Ids that break naive quoting, encoding or comparison. Each is its own event: none may
/// be trimmed, case-folded or unescaped into another.
const NASTY_IDS: [&str; 12] = [
    "it's \"quoted\"",
    "'; DROP TABLE webhook_events; --",
    "x' OR '1'='1",
    "a\\b",
    "a\\\\b",
    "%s%n%x",
    "\u{1F980}\u{1F525}",
    "e\u{301}",
    "\u{e9}",
    "a",
    "A",
    " a ",
];

async fn ids_with_quotes_sql_and_emoji_are_stored_and_deduplicated_exactly(db: &TestDb) {
    let app = db.app();
    let refersion = Source::parse("refersion").unwrap();
    let mut first_ids = Vec::new();
    for id in NASTY_IDS {
        // Ids, order ids and tracking ids all carry the hostile text.
        let body = json!({
            "event_type": "sale",
            "event_id": id,
            "order_id": id,
            "commission_amount": "1.25",
            "sale_amount": 10,
            "tracking_id": id,
        })
        .to_string();
        let first = post(&app, "/webhooks/refersion", &[], &body).await;
        assert_eq!(first.status, StatusCode::OK, "{id:?}: {:?}", first.body);
        assert_eq!(first.body["event_id"], id);
        let again = post(&app, "/webhooks/refersion", &[], &body).await;
        assert_eq!(again.status, StatusCode::ACCEPTED, "{id:?}");
        assert_eq!(
            again.body["webhook_event_id"],
            first.body["webhook_event_id"]
        );
        let event_id = EventId::parse(id, "id").unwrap();
        let stored = db.store.event(&refersion, &event_id).unwrap().unwrap();
        assert_eq!(stored.external_event_id, id);
        assert_eq!(stored.delivery_count, 2);
        let conversion = db.conversion(&refersion, &event_id).unwrap();
        assert_eq!(conversion.order_id.as_deref(), Some(id));
        assert_eq!(conversion.tracking_id.as_deref(), Some(id));
        first_ids.push(first.body["webhook_event_id"].clone());
    }
    first_ids.sort_by_key(|v| v.as_i64());
    first_ids.dedup();
    assert_eq!(
        first_ids.len(),
        NASTY_IDS.len(),
        "every id is its own event"
    );
    let totals = db.totals();
    assert_eq!(totals.events, NASTY_IDS.len() as i64);

    // The same texts in a header and in Stripe's body id.
    for (i, id) in NASTY_IDS.iter().enumerate() {
        let stripe = json!({ "id": id, "type": "charge.succeeded" }).to_string();
        let reply = post(&app, "/webhooks/stripe", &[], &stripe).await;
        assert_eq!(reply.status, StatusCode::OK, "{id:?}");
        if id.is_ascii() {
            let body = format!(r#"{{"n":{i}}}"#);
            let reply = post(&app, "/webhooks/acme", &[("webhook-id", id)], &body).await;
            assert_eq!(reply.status, StatusCode::OK, "{id:?}: {:?}", reply.body);
            assert_eq!(reply.body["event_id"], *id);
        }
    }
}

async fn ids_at_the_byte_limit_count_bytes_not_characters(db: &TestDb) {
    let app = db.app();
    let crab = "\u{1F980}"; // four bytes
    let at_limit = format!("{}abc", crab.repeat(63));
    let over_limit = crab.repeat(64);
    assert_eq!((at_limit.len(), over_limit.len()), (255, 256));
    let body = |id: &str| json!({ "event_type": "note", "event_id": id }).to_string();
    let ok = post(&app, "/webhooks/refersion", &[], &body(&at_limit)).await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let again = post(&app, "/webhooks/refersion", &[], &body(&at_limit)).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let too_long = post(&app, "/webhooks/refersion", &[], &body(&over_limit)).await;
    assert_eq!(too_long.status, StatusCode::BAD_REQUEST);
    assert_eq!(too_long.body["field"], "event_id");
    let stored = db
        .store
        .event(
            &Source::parse("refersion").unwrap(),
            &EventId::parse(&at_limit, "id").unwrap(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(stored.external_event_id, at_limit);
    assert_eq!(db.totals().events, 1);
}

/// PostgreSQL `text` cannot hold U+0000, so an id or a stored field carrying one could
/// only be stored on SQLite: both backends refuse it instead, before the store.
async fn nul_in_any_stored_text_is_400_on_every_backend(db: &TestDb) {
    let app = db.app();
    let sale = |field: &str, value: &str| {
        let mut body = json!({
            "event_type": "sale",
            "event_id": "nul-ok",
            "order_id": "o",
            "commission_amount": 1,
            "sale_amount": 2,
            "tracking_id": "t",
        });
        body[field] = json!(value);
        body.to_string()
    };
    let cases = [
        ("refersion", sale("event_id", "a\u{0}b"), "event_id"),
        ("refersion", sale("event_id", "\u{0}"), "event_id"),
        ("refersion", sale("order_id", "o\u{0}"), "order_id"),
        ("refersion", sale("tracking_id", "\u{0}t"), "tracking_id"),
        (
            "refersion",
            json!({"event_type": "n\u{0}te", "event_id": "nul-type"}).to_string(),
            "event_type",
        ),
        (
            "stripe",
            json!({"id": "evt\u{0}", "type": "x"}).to_string(),
            "id",
        ),
        ("acme", json!({"id": "a\u{0}"}).to_string(), "id"),
    ];
    for (source, body, field) in cases {
        let reply = post(&app, &format!("/webhooks/{source}"), &[], &body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {:?}",
            reply.body
        );
        assert_eq!(reply.body["field"], field, "{body}");
    }
    assert_eq!(db.totals(), Totals::default());
    // NUL elsewhere in the payload is just text of the body, kept as received.
    let body = json!({"id": "nul-in-payload", "note": "a\u{0}b"}).to_string();
    let reply = post(&app, "/webhooks/acme", &[], &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let again = post(&app, "/webhooks/acme", &[], &body).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
}
