//! What only a real socket or the real binary shows: body limits without reading the
//! body, chunked bodies, slow bodies, JSON on every error, store failures as 503, and
//! startup errors as one line and exit code 1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    Backend, TestDb, TestServer, Totals, assert_one_line_failure, http_post, parse_reply,
    raw_exchange,
};
use hooklatch::App;
use hooklatch::config::Config;
use hooklatch::model::outbox::{ForwardBacklog, ForwardInfo};
use hooklatch::model::{EventId, NewEvent, Outcome, Source, StoredConflict, StoredEvent};
use hooklatch::read;
use hooklatch::store::{self as store, AdminReads, Operations, Outbox, Receiving, StoreError};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn sqlite(name: &str) -> TestDb {
    TestDb::fresh(Backend::Sqlite, name).expect("SQLite is always available")
}

#[test]
fn an_oversized_declared_body_is_refused_before_it_is_sent() {
    let db = sqlite("oversized");
    let rt = runtime();
    let server = rt.block_on(TestServer::start(db.app()));
    let addr = server.addr;
    // Declare 10 MB and send none of it: the answer must come anyway.
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n")
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"], "payload_too_large");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered without waiting for the body"
    );
    rt.block_on(server.stop());
    assert_eq!(db.totals(), Totals::default());
}

#[test]
fn a_chunked_body_is_cut_off_at_the_limit() {
    let db = sqlite("chunked");
    let rt = runtime();
    let config = Config {
        max_body_bytes: 1024,
        ..db.config()
    };
    let server = rt.block_on(TestServer::start(db.app_with(&config)));
    let chunk = format!("{:x}\r\n{}\r\n", 4096, "x".repeat(4096));
    let head = b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    let body: Vec<u8> = chunk.repeat(2560).into_bytes(); // 10 MiB, never completed
    let reply = raw_exchange(server.addr, head, &body);
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["error"], "payload_too_large");

    // A small chunked body is read normally.
    let small = "{\"id\":\"chunky\"}";
    let framed = format!("{:x}\r\n{small}\r\n0\r\n\r\n", small.len());
    let ok = raw_exchange(server.addr, head, framed.as_bytes());
    assert_eq!(ok.status, 200, "{}", ok.body);
    rt.block_on(server.stop());
    assert_eq!(db.totals().events, 1);
}

#[test]
fn a_slow_body_times_out_with_408() {
    let db = sqlite("slow");
    let rt = runtime();
    let config = Config {
        body_timeout: Duration::from_secs(1),
        ..db.config()
    };
    let server = rt.block_on(TestServer::start(db.app_with(&config)));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\n\r\n{\"id\":")
        .unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let reply = parse_reply(&raw);
    assert_eq!(reply.status, 408);
    assert_eq!(reply.json()["error"], "request_timeout");
    rt.block_on(server.stop());
    assert_eq!(db.totals(), Totals::default());
}

#[test]
fn every_error_over_the_wire_is_json() {
    let db = sqlite("json_errors");
    let rt = runtime();
    let server = rt.block_on(TestServer::start(db.app()));
    let addr = server.addr;
    let cases: [(&[u8], u16); 6] = [
        (b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        (b"GET /webhooks/acme HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (b"POST /webhooks/BAD HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 404),
        (b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 415),
        (b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{\xff}", 400),
        (b"POST /webhooks/acme HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", 400),
    ];
    for (request, status) in cases {
        let reply = raw_exchange(addr, request, b"");
        assert_eq!(reply.status, status, "{}", String::from_utf8_lossy(request));
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.json()["error"].is_string());
        assert!(reply.json()["message"].is_string());
    }
    let ok = http_post(addr, "/webhooks/acme", &[], "{\"id\":\"1\"}");
    assert_eq!(ok.status, 200);
    rt.block_on(server.stop());
}

/// A store that is down: every call fails as a real outage would.
struct DownStore;

impl Receiving for DownStore {
    fn backend(&self) -> &'static str {
        "down"
    }
    fn process(&self, _: &NewEvent) -> Result<Outcome, StoreError> {
        Err(StoreError::Internal(
            "SELECT secret FROM /var/lib/hooklatch.db".into(),
        ))
    }
    fn ping(&self) -> Result<(), StoreError> {
        Err(down())
    }
}

impl AdminReads for DownStore {
    fn event(&self, _: &Source, _: &EventId) -> Result<Option<StoredEvent>, StoreError> {
        Err(down())
    }
    fn conflicts(&self, _: &Source, _: &EventId) -> Result<Vec<StoredConflict>, StoreError> {
        Err(down())
    }
    fn list_events(
        &self,
        _: &read::EventFilter,
        _: Option<&read::Cursor>,
        _: u32,
    ) -> Result<Vec<read::EventItem>, StoreError> {
        Err(down())
    }
    fn list_conversions(
        &self,
        _: &read::ConversionFilter,
        _: Option<&read::Cursor>,
        _: u32,
    ) -> Result<Vec<read::ConversionItem>, StoreError> {
        Err(down())
    }
    fn conversion_by_id(&self, _: i64) -> Result<Option<read::ConversionItem>, StoreError> {
        Err(down())
    }
    fn conversion_summary(&self) -> Result<Vec<read::SummaryGroup>, StoreError> {
        Err(down())
    }
    fn forward_history(
        &self,
        _: i64,
    ) -> Result<Vec<hooklatch::model::outbox::AttemptRecord>, store::StoreError> {
        Err(down())
    }
    fn source_stats(&self) -> Result<Vec<read::SourceStats>, StoreError> {
        Err(down())
    }
    fn export_events(
        &self,
        _: &read::ExportFilter,
        _: Option<&read::Cursor>,
        _: u32,
    ) -> Result<Vec<read::ExportItem>, StoreError> {
        Err(down())
    }
}

impl Operations for DownStore {
    fn migrate(&self) -> Result<(), StoreError> {
        Err(down())
    }
    fn backup_to(
        &self,
        _: &std::path::Path,
    ) -> Result<hooklatch::store::BackupReport, hooklatch::store::BackupError> {
        Err(down().into())
    }
    fn prune_payloads(&self, _: &read::Timestamp, _: bool) -> Result<read::Pruned, StoreError> {
        Err(down())
    }
    fn recompute_totals(&self) -> Result<(), StoreError> {
        Err(down())
    }
    fn verify_totals(&self) -> Result<read::TotalsCheck, StoreError> {
        Err(down())
    }
}

impl Outbox for DownStore {
    fn claim_forwards_except(
        &self,
        _: &str,
        _: Duration,
        _: usize,
        _: &[String],
    ) -> Result<Vec<hooklatch::model::outbox::ForwardJob>, store::StoreError> {
        Err(down())
    }
    fn record_forward(
        &self,
        _: i64,
        _: &str,
        _: &hooklatch::model::outbox::AttemptReport,
    ) -> Result<Option<hooklatch::model::outbox::SourceChange>, store::StoreError> {
        Err(down())
    }
    fn postpone_forward(&self, _: i64, _: &str, _: Duration) -> Result<(), store::StoreError> {
        Err(down())
    }
    fn forwarding_sources(
        &self,
    ) -> Result<Vec<hooklatch::model::outbox::SourceForwarding>, store::StoreError> {
        Err(down())
    }
    fn set_forwarding_paused(
        &self,
        _: &hooklatch::model::Source,
        _: bool,
    ) -> Result<Option<hooklatch::model::outbox::SourceChange>, store::StoreError> {
        Err(down())
    }
    fn replay_forwards(
        &self,
        _: &hooklatch::model::Source,
        _: &read::Timestamp,
        _: Option<&read::Timestamp>,
    ) -> Result<u64, store::StoreError> {
        Err(down())
    }
    fn release_forwards(&self, _: Option<&str>) -> Result<u64, StoreError> {
        Err(down())
    }
    fn requeue_forward(&self, _: &Source, _: &EventId) -> Result<Option<i64>, StoreError> {
        Err(down())
    }
    fn requeue_forwards(&self, _: Option<&Source>, _: bool) -> Result<u64, StoreError> {
        Err(down())
    }
    fn forward_state(&self, _: &Source, _: &EventId) -> Result<Option<ForwardInfo>, StoreError> {
        Err(down())
    }
    fn forward_backlog(&self) -> Result<ForwardBacklog, StoreError> {
        Err(down())
    }
}

fn down() -> StoreError {
    StoreError::Unavailable("connection refused".into())
}

#[test]
fn a_failing_store_is_503_with_retry_after_and_no_internals() {
    let rt = runtime();
    rt.block_on(async {
        let app = Arc::new(App::new(Arc::new(DownStore), &Config::default()));
        let reply = common::post(&app, "/webhooks/refersion", &[], common::SEED).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body["error"], "store_unavailable");
        assert_eq!(reply.header("retry-after"), Some("5"));
        let text = reply.body.to_string();
        assert!(
            !text.contains("SELECT") && !text.contains("/var/lib"),
            "{text}"
        );

        let ready = common::request(&app, warp::test::request().path("/readyz")).await;
        assert_eq!(ready.status, 503);
        assert_eq!(ready.header("retry-after"), Some("5"));
        let health = common::request(&app, warp::test::request().path("/healthz")).await;
        assert_eq!(health.status, 200, "the process itself is fine");
    });
}

fn hooklatch() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("HOOKLATCH_CONFIG")
        .env("RUST_LOG", "warn");
    command
}

#[test]
fn a_bad_database_url_is_one_line_and_exit_1() {
    let output = hooklatch()
        .args(["migrate", "--database-url", "mysql://root:pw@db/x"])
        .output()
        .unwrap();
    assert_one_line_failure(output, "sqlite://PATH");
}

#[test]
fn an_unreachable_store_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let output = hooklatch()
        .args([
            "migrate",
            "--database-url",
            &format!("sqlite://{}", dir.path().display()),
        ])
        .output()
        .unwrap();
    assert_one_line_failure(output, "cannot open");
    let output = hooklatch()
        .args([
            "migrate",
            "--connect-timeout",
            "2",
            "--database-url",
            "postgres://postgres@127.0.0.1:1/none",
        ])
        .output()
        .unwrap();
    assert_one_line_failure(output, "cannot open");
}

#[test]
fn migrate_creates_the_schema_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    for _ in 0..2 {
        let output = hooklatch()
            .args([
                "migrate",
                "--database-url",
                &format!("sqlite://{}", path.display()),
            ])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let applied: i64 = conn
        .query_row("SELECT count(*) FROM refinery_schema_history", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(applied, hooklatch::store::migration_names().len() as i64);
    let index: String = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE name = 'idx_webhook_events_idempotency'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(index.contains("UNIQUE"), "{index}");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn migration_folders_list_the_same_files_as_the_binary() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let list = |backend: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join("migrations").join(backend))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let compiled: Vec<String> = hooklatch::store::migration_names()
        .iter()
        .map(|n| format!("{n}.sql"))
        .collect();
    assert_eq!(list("sqlite"), compiled);
    assert_eq!(list("postgres"), compiled);
}

#[test]
fn metrics_count_deliveries_and_refused_signatures_with_bounded_labels() {
    use hooklatch::config::SourceSettings;
    use hooklatch::sources::Preset;
    let db = sqlite("metrics");
    let rt = runtime();
    rt.block_on(async {
        let mut config = db.config();
        config.sources.insert("metricshop", SourceSettings::new(Preset::Shopify, vec!["k".into()]));
        let app = db.app_with(&config);
        let unsigned = common::post(&app, "/webhooks/metricshop", &[("X-Shopify-Webhook-Id", "1")], "{}").await;
        assert_eq!(unsigned.status, 401);
        let signature = common::base64_hmac("k", b"{}");
        let signed = common::post(&app, "/webhooks/metricshop", &[("X-Shopify-Webhook-Id", "1"), ("X-Shopify-Hmac-Sha256", &signature)], "{}").await;
        assert_eq!(signed.status, 200);
        let random = common::post(&app, "/webhooks/random-name-7781", &[], r#"{"id":"x"}"#).await;
        assert_eq!(random.status, 200);

        let page = warp::test::request().path("/metrics").reply(&hooklatch::routes(app.clone())).await;
        assert_eq!(page.status(), 200);
        let text = String::from_utf8_lossy(page.body()).into_owned();
        let line = |prefix: &str| text.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
        assert_eq!(
            line(r#"hooklatch_signature_failures_total{source="metricshop",reason="missing_header"}"#).as_deref(),
            Some(r#"hooklatch_signature_failures_total{source="metricshop",reason="missing_header"} 1"#),
            "{text}"
        );
        assert!(line(r#"hooklatch_deliveries_total{source="metricshop",outcome="processed"} 1"#).is_some(), "{text}");
        assert!(!text.contains("random-name-7781"), "unconfigured names are not labels");
        assert!(text.contains("hooklatch_request_duration_seconds_bucket"), "{text}");
    });
}

/// The harness itself: a panic inside the server task must fail the test that stops the
/// server, not vanish with the task.
#[test]
#[should_panic(expected = "serve panicked")]
fn a_panic_in_the_server_task_fails_the_test_that_stops_it() {
    let rt = runtime();
    rt.block_on(async {
        let task = tokio::spawn(async { panic!("serve panicked") });
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        TestServer::around(addr, task).stop().await;
    });
}
