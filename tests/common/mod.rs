//! Test harness shared by every integration test: a fresh store per test on each
//! backend, and helpers to drive the HTTP layer with or without a socket.
//!
//! PostgreSQL: each test creates its own database on the server named by
//! `HOOKLATCH_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and drops it afterwards, so tests run in parallel and twice in a row. Without a
//! reachable server the PostgreSQL tests say SKIPPED on the terminal; with `CI=true`
//! they fail instead.

#![allow(dead_code)]

pub mod binary;
pub mod cluster;
pub mod formation;
pub mod forward_app;
pub mod pg_tools;
pub mod stored;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use hooklatch::config::{Config, DatabaseUrl};
use hooklatch::read;
use hooklatch::store::{self, AdminReads, Operations, Outbox, Receiving, Store, StoreOptions};

pub use self::stored::{StoredConversion, Totals, conversion, totals};
use hooklatch::{App, routes};
use serde_json::Value;
use warp::http::{HeaderMap, StatusCode};

/// The admin token of [`TestDb::admin_app`].
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// One test's private store, removed when dropped.
pub struct TestDb {
    pub backend: Backend,
    pub url: DatabaseUrl,
    pub store: Arc<dyn Store>,
    /// Keeps the SQLite directory alive for the test.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL database to drop afterwards.
    pg_database: Option<String>,
}

impl TestDb {
    /// A fresh, migrated store, or `None` (after a loud SKIPPED line) when the backend
    /// cannot be reached outside CI.
    pub fn fresh(backend: Backend, test: &str) -> Option<TestDb> {
        Self::fresh_with(backend, test, &StoreOptions::default())
    }

    pub fn fresh_with(backend: Backend, test: &str, options: &StoreOptions) -> Option<TestDb> {
        let db = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = DatabaseUrl::Sqlite(dir.path().join("hooklatch.db"));
                let store = store::open(&url, options).expect("open SQLite");
                TestDb {
                    backend,
                    url,
                    store,
                    _dir: Some(dir),
                    pg_database: None,
                }
            }
            Backend::Postgres => {
                let (name, url) = create_pg_database(test)?;
                let url = DatabaseUrl::Postgres(url);
                let store = match store::open(&url, options) {
                    Ok(store) => store,
                    Err(e) => {
                        drop_pg_database(&name);
                        panic!("open PostgreSQL: {e}");
                    }
                };
                TestDb {
                    backend,
                    url,
                    store,
                    _dir: None,
                    pg_database: Some(name),
                }
            }
        };
        db.store.migrate().expect("migrate");
        Some(db)
    }

    /// Another store on the same database: a second hooklatch instance.
    pub fn reopen(&self) -> Arc<dyn Store> {
        store::open(&self.url, &StoreOptions::default()).expect("reopen")
    }

    /// Row counts, read straight from the database.
    pub fn totals(&self) -> Totals {
        totals(&self.url)
    }

    /// The conversion of event `(source, id)`, read straight from the database.
    pub fn conversion(
        &self,
        source: &hooklatch::model::Source,
        id: &hooklatch::model::EventId,
    ) -> Option<StoredConversion> {
        conversion(&self.url, source, id)
    }

    /// Settings pointing at this database, for apps and servers built on it.
    pub fn config(&self) -> Config {
        Config {
            database_url: self.url.clone(),
            ..Config::default()
        }
    }

    /// [`TestDb::config`] with a Standard source `shop` that forwards to a closed port:
    /// nothing listens there and no worker runs in these tests, so outbox entries stay
    /// as the test sets them.
    pub fn config_forwarding_shop(&self) -> Config {
        let mut config = self.config();
        config.sources.insert(
            "shop",
            hooklatch::config::SourceSettings {
                forward_to: Some("http://127.0.0.1:9/hook".into()),
                ..hooklatch::config::SourceSettings::new(
                    hooklatch::sources::Preset::Standard,
                    Vec::new(),
                )
            },
        );
        config
    }

    pub fn app(&self) -> Arc<App> {
        self.app_with(&self.config())
    }

    pub fn app_with(&self, config: &Config) -> Arc<App> {
        Arc::new(App::new(self.store.clone(), config))
    }

    /// An app with the admin side on, its token [`ADMIN_TOKEN`].
    pub fn admin_app(&self) -> Arc<App> {
        self.admin_app_with(&self.config())
    }

    pub fn admin_app_with(&self, config: &Config) -> Arc<App> {
        Arc::new(App::new(self.store.clone(), config).with_admin_token(ADMIN_TOKEN))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_database.take() {
            // The pool must close before the database can be dropped.
            let store = std::mem::replace(&mut self.store, Arc::new(Closed));
            drop(store);
            drop_pg_database(&name);
        }
    }
}

/// Stands in for a store that was dropped.
struct Closed;

impl Receiving for Closed {
    fn backend(&self) -> &'static str {
        "closed"
    }
    fn process(
        &self,
        _: &hooklatch::model::NewEvent,
    ) -> Result<hooklatch::model::Outcome, store::StoreError> {
        Err(closed())
    }
    fn ping(&self) -> Result<(), store::StoreError> {
        Err(closed())
    }
}

impl AdminReads for Closed {
    fn event(
        &self,
        _: &hooklatch::model::Source,
        _: &hooklatch::model::EventId,
    ) -> Result<Option<hooklatch::model::StoredEvent>, store::StoreError> {
        Err(closed())
    }
    fn conflicts(
        &self,
        _: &hooklatch::model::Source,
        _: &hooklatch::model::EventId,
    ) -> Result<Vec<hooklatch::model::StoredConflict>, store::StoreError> {
        Err(closed())
    }
    fn list_events(
        &self,
        _: &read::EventFilter,
        _: Option<&read::Cursor>,
        _: u32,
    ) -> Result<Vec<read::EventItem>, store::StoreError> {
        Err(closed())
    }
    fn list_conversions(
        &self,
        _: &read::ConversionFilter,
        _: Option<&read::Cursor>,
        _: u32,
    ) -> Result<Vec<read::ConversionItem>, store::StoreError> {
        Err(closed())
    }
    fn conversion_by_id(&self, _: i64) -> Result<Option<read::ConversionItem>, store::StoreError> {
        Err(closed())
    }
    fn conversion_summary(&self) -> Result<Vec<read::SummaryGroup>, store::StoreError> {
        Err(closed())
    }
    fn forward_history(
        &self,
        _: i64,
    ) -> Result<Vec<hooklatch::model::outbox::AttemptRecord>, store::StoreError> {
        Err(closed())
    }
    fn source_stats(&self) -> Result<Vec<read::SourceStats>, store::StoreError> {
        Err(closed())
    }
    fn export_events(
        &self,
        _: &read::ExportFilter,
        _: Option<&read::Cursor>,
        _: u32,
    ) -> Result<Vec<read::ExportItem>, store::StoreError> {
        Err(closed())
    }
}

impl Operations for Closed {
    fn migrate(&self) -> Result<(), store::StoreError> {
        Err(closed())
    }
    fn backup_to(&self, _: &std::path::Path) -> Result<store::BackupReport, store::BackupError> {
        Err(closed().into())
    }
    fn prune_payloads(
        &self,
        _: &read::Timestamp,
        _: bool,
    ) -> Result<read::Pruned, store::StoreError> {
        Err(closed())
    }
    fn recompute_totals(&self) -> Result<(), store::StoreError> {
        Err(closed())
    }
    fn verify_totals(&self) -> Result<read::TotalsCheck, store::StoreError> {
        Err(closed())
    }
}

impl Outbox for Closed {
    fn claim_forwards_except(
        &self,
        _: &str,
        _: Duration,
        _: usize,
        _: &[String],
    ) -> Result<Vec<hooklatch::model::outbox::ForwardJob>, store::StoreError> {
        Err(closed())
    }
    fn record_forward(
        &self,
        _: i64,
        _: &str,
        _: &hooklatch::model::outbox::AttemptReport,
    ) -> Result<Option<hooklatch::model::outbox::SourceChange>, store::StoreError> {
        Err(closed())
    }
    fn postpone_forward(&self, _: i64, _: &str, _: Duration) -> Result<(), store::StoreError> {
        Err(closed())
    }
    fn forwarding_sources(
        &self,
    ) -> Result<Vec<hooklatch::model::outbox::SourceForwarding>, store::StoreError> {
        Err(closed())
    }
    fn set_forwarding_paused(
        &self,
        _: &hooklatch::model::Source,
        _: bool,
    ) -> Result<Option<hooklatch::model::outbox::SourceChange>, store::StoreError> {
        Err(closed())
    }
    fn replay_forwards(
        &self,
        _: &hooklatch::model::Source,
        _: &read::Timestamp,
        _: Option<&read::Timestamp>,
    ) -> Result<u64, store::StoreError> {
        Err(closed())
    }
    fn release_forwards(&self, _: Option<&str>) -> Result<u64, store::StoreError> {
        Err(closed())
    }
    fn requeue_forward(
        &self,
        _: &hooklatch::model::Source,
        _: &hooklatch::model::EventId,
    ) -> Result<Option<i64>, store::StoreError> {
        Err(closed())
    }
    fn requeue_forwards(
        &self,
        _: Option<&hooklatch::model::Source>,
        _: bool,
    ) -> Result<u64, store::StoreError> {
        Err(closed())
    }
    fn forward_state(
        &self,
        _: &hooklatch::model::Source,
        _: &hooklatch::model::EventId,
    ) -> Result<Option<hooklatch::model::outbox::ForwardInfo>, store::StoreError> {
        Err(closed())
    }
    fn forward_backlog(
        &self,
    ) -> Result<hooklatch::model::outbox::ForwardBacklog, store::StoreError> {
        Err(closed())
    }
}

/// The store under test, telling when a `process` call has reached it: a test waits for
/// that signal, not for a while, before it checks that the call is blocked.
pub struct Watched {
    inner: Arc<dyn Store>,
    entered: std::sync::mpsc::Sender<()>,
}

impl Watched {
    pub fn new(inner: Arc<dyn Store>) -> (Arc<Watched>, std::sync::mpsc::Receiver<()>) {
        let (entered, rx) = std::sync::mpsc::channel();
        (Arc::new(Watched { inner, entered }), rx)
    }
}

impl Receiving for Watched {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn process(
        &self,
        event: &hooklatch::model::NewEvent,
    ) -> Result<hooklatch::model::Outcome, store::StoreError> {
        let _ = self.entered.send(());
        self.inner.process(event)
    }
    fn ping(&self) -> Result<(), store::StoreError> {
        self.inner.ping()
    }
}

impl AdminReads for Watched {
    fn event(
        &self,
        source: &hooklatch::model::Source,
        id: &hooklatch::model::EventId,
    ) -> Result<Option<hooklatch::model::StoredEvent>, store::StoreError> {
        self.inner.event(source, id)
    }
    fn conflicts(
        &self,
        source: &hooklatch::model::Source,
        id: &hooklatch::model::EventId,
    ) -> Result<Vec<hooklatch::model::StoredConflict>, store::StoreError> {
        self.inner.conflicts(source, id)
    }
    fn list_events(
        &self,
        filter: &read::EventFilter,
        after: Option<&read::Cursor>,
        limit: u32,
    ) -> Result<Vec<read::EventItem>, store::StoreError> {
        self.inner.list_events(filter, after, limit)
    }
    fn list_conversions(
        &self,
        filter: &read::ConversionFilter,
        after: Option<&read::Cursor>,
        limit: u32,
    ) -> Result<Vec<read::ConversionItem>, store::StoreError> {
        self.inner.list_conversions(filter, after, limit)
    }
    fn conversion_by_id(&self, id: i64) -> Result<Option<read::ConversionItem>, store::StoreError> {
        self.inner.conversion_by_id(id)
    }
    fn conversion_summary(&self) -> Result<Vec<read::SummaryGroup>, store::StoreError> {
        self.inner.conversion_summary()
    }
    fn forward_history(
        &self,
        id: i64,
    ) -> Result<Vec<hooklatch::model::outbox::AttemptRecord>, store::StoreError> {
        self.inner.forward_history(id)
    }
    fn source_stats(&self) -> Result<Vec<read::SourceStats>, store::StoreError> {
        self.inner.source_stats()
    }
    fn export_events(
        &self,
        filter: &read::ExportFilter,
        after: Option<&read::Cursor>,
        limit: u32,
    ) -> Result<Vec<read::ExportItem>, store::StoreError> {
        self.inner.export_events(filter, after, limit)
    }
}

impl Operations for Watched {
    fn migrate(&self) -> Result<(), store::StoreError> {
        self.inner.migrate()
    }
    fn backup_to(&self, path: &std::path::Path) -> Result<store::BackupReport, store::BackupError> {
        self.inner.backup_to(path)
    }
    fn prune_payloads(
        &self,
        before: &read::Timestamp,
        dry_run: bool,
    ) -> Result<read::Pruned, store::StoreError> {
        self.inner.prune_payloads(before, dry_run)
    }
    fn recompute_totals(&self) -> Result<(), store::StoreError> {
        self.inner.recompute_totals()
    }
    fn verify_totals(&self) -> Result<read::TotalsCheck, store::StoreError> {
        self.inner.verify_totals()
    }
}

impl Outbox for Watched {
    fn claim_forwards_except(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
        paced: &[String],
    ) -> Result<Vec<hooklatch::model::outbox::ForwardJob>, store::StoreError> {
        self.inner.claim_forwards_except(owner, lease, limit, paced)
    }
    fn record_forward(
        &self,
        id: i64,
        owner: &str,
        report: &hooklatch::model::outbox::AttemptReport,
    ) -> Result<Option<hooklatch::model::outbox::SourceChange>, store::StoreError> {
        self.inner.record_forward(id, owner, report)
    }
    fn postpone_forward(
        &self,
        id: i64,
        owner: &str,
        delay: Duration,
    ) -> Result<(), store::StoreError> {
        self.inner.postpone_forward(id, owner, delay)
    }
    fn forwarding_sources(
        &self,
    ) -> Result<Vec<hooklatch::model::outbox::SourceForwarding>, store::StoreError> {
        self.inner.forwarding_sources()
    }
    fn set_forwarding_paused(
        &self,
        source: &hooklatch::model::Source,
        paused: bool,
    ) -> Result<Option<hooklatch::model::outbox::SourceChange>, store::StoreError> {
        self.inner.set_forwarding_paused(source, paused)
    }
    fn replay_forwards(
        &self,
        source: &hooklatch::model::Source,
        since: &read::Timestamp,
        until: Option<&read::Timestamp>,
    ) -> Result<u64, store::StoreError> {
        self.inner.replay_forwards(source, since, until)
    }
    fn release_forwards(&self, owner: Option<&str>) -> Result<u64, store::StoreError> {
        self.inner.release_forwards(owner)
    }
    fn requeue_forward(
        &self,
        source: &hooklatch::model::Source,
        id: &hooklatch::model::EventId,
    ) -> Result<Option<i64>, store::StoreError> {
        self.inner.requeue_forward(source, id)
    }
    fn requeue_forwards(
        &self,
        source: Option<&hooklatch::model::Source>,
        failed_only: bool,
    ) -> Result<u64, store::StoreError> {
        self.inner.requeue_forwards(source, failed_only)
    }
    fn forward_state(
        &self,
        source: &hooklatch::model::Source,
        id: &hooklatch::model::EventId,
    ) -> Result<Option<hooklatch::model::outbox::ForwardInfo>, store::StoreError> {
        self.inner.forward_state(source, id)
    }
    fn forward_backlog(
        &self,
    ) -> Result<hooklatch::model::outbox::ForwardBacklog, store::StoreError> {
        self.inner.forward_backlog()
    }
}

/// PostgreSQL: polls until a session on `url`'s database waits for a lock (another
/// transaction holds the row it needs), or `limit` passes. Blocking; answers whether it
/// saw one.
pub fn some_session_waits_for_a_lock(url: &str, limit: Duration) -> bool {
    let mut client = admin_client(url).expect("connect to watch pg_stat_activity");
    let deadline = std::time::Instant::now() + limit;
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .expect("pg_stat_activity")
            .get(0);
        if waiting > 0 {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn closed() -> store::StoreError {
    store::StoreError::Unavailable("closed".into())
}

/// A runtime with two workers, the machine's size, for tests that drive a server from a
/// plain `#[test]` and reason about what runs at once.
pub fn two_worker_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A fresh SQLite store whose commits skip the fsync: for tests that are not about
/// durability.
pub fn fast_sqlite(name: &str) -> TestDb {
    let options = StoreOptions {
        sqlite_full_sync: false,
        ..StoreOptions::default()
    };
    TestDb::fresh_with(Backend::Sqlite, name, &options).expect("SQLite is always available")
}

pub fn postgres_admin_url() -> String {
    std::env::var("HOOKLATCH_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Creates `hooklatch_t_<test>_<pid>_<n>` and returns its name and URL.
fn create_pg_database(test: &str) -> Option<(String, String)> {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let admin_url = postgres_admin_url();
    let mut client = match admin_client(&admin_url) {
        Ok(client) => client,
        Err(e) => {
            if in_ci() {
                panic!("CI=true but PostgreSQL at {admin_url} is unreachable: {e}");
            }
            // Written to the terminal directly: libtest captures print!/eprint! of
            // passing tests, and a skip must not be silent.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (no PostgreSQL at {admin_url}: {e}): postgres::{test}"
            );
            return None;
        }
    };
    let short: String = test
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    let name = format!(
        "hooklatch_t_{}_{}_{}",
        short.to_ascii_lowercase(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    // Two statements: a multi-statement batch is one transaction, which DROP DATABASE
    // refuses.
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|()| client.batch_execute(&format!("CREATE DATABASE {name}")))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    Some((name.clone(), replace_database(&admin_url, &name)))
}

fn drop_pg_database(name: &str) {
    if let Ok(mut client) = admin_client(&postgres_admin_url()) {
        let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
}

pub fn admin_client(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(Duration::from_secs(3));
    // The sync client runs its own runtime, which must not nest inside a test's tokio
    // runtime, so connect on a plain thread.
    std::thread::scope(|s| {
        s.spawn(|| config.connect(postgres::NoTls))
            .join()
            .expect("connect thread")
    })
}

/// `postgres://u@h:p/db?x` with `db` replaced by `database`.
pub fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_part = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{host_part}/{database}{query}")
}

/// Expands contract cases, each `async fn case(db: &TestDb)`, into one `#[test]` per
/// backend: `sqlite::case` and `postgres::case`.
#[macro_export]
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[test]
                fn $case() {
                    $crate::common::run_case($crate::common::Backend::Sqlite, stringify!($case), |db| Box::pin(super::$case(db)));
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $case() {
                    $crate::common::run_case($crate::common::Backend::Postgres, stringify!($case), |db| Box::pin(super::$case(db)));
                }
            )*
        }
    };
}

type CaseFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// Opens a fresh store on this thread, runs the case on a multi-threaded runtime, and
/// closes the store on this thread again (never on a runtime worker).
pub fn run_case(
    backend: Backend,
    name: &str,
    case: impl for<'a> FnOnce(&'a TestDb) -> CaseFuture<'a>,
) {
    let Some(db) = TestDb::fresh(backend, name) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(case(&db));
    drop(runtime);
    drop(db);
}

/// A response as the tests read it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// POSTs a JSON body through the routes, without a socket.
pub async fn post(app: &Arc<App>, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut request = warp::test::request()
        .method("POST")
        .path(path)
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    into_reply(request.reply(&routes(app.clone())).await)
}

/// A GET through the routes with `Authorization: Bearer <token>` (none when `None`).
pub async fn admin_get(app: &Arc<App>, path: &str, token: Option<&str>) -> Reply {
    let mut request = warp::test::request().method("GET").path(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    into_reply(request.reply(&routes(app.clone())).await)
}

/// Any request through the routes, without a socket.
pub async fn request(app: &Arc<App>, request: warp::test::RequestBuilder) -> Reply {
    into_reply(request.reply(&routes(app.clone())).await)
}

fn into_reply(response: warp::http::Response<bytes::Bytes>) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let body = serde_json::from_slice(response.body()).unwrap_or_else(|e| {
        panic!(
            "{status}: body is not JSON ({e}): {:?}",
            String::from_utf8_lossy(response.body())
        )
    });
    assert_eq!(
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json"),
        "every answer is JSON"
    );
    Reply {
        status,
        headers,
        body,
    }
}

/// A Refersion sale body with the given event id and commission.
pub fn sale(event_id: &str, commission: &str) -> String {
    format!(
        r#"{{"event_type":"sale","event_id":"{event_id}","order_id":"ORDER_{event_id}","commission_amount":{commission},"sale_amount":75.00,"tracking_id":"YOyqC7"}}"#
    )
}

/// A Refersion conversion delivery (providers.md §1.2) of conversion `id`; `updated` is
/// Refersion's `YYYY-MM-DD HH:MM:SS`, left out when `None`.
pub fn conversion_body(id: u64, status: &str, total: &str, updated: Option<&str>) -> String {
    let updated = updated
        .map(|u| format!(r#","updated":"{u}""#))
        .unwrap_or_default();
    format!(
        r#"{{"id":{id},"created":"2026-01-05 10:00:00"{updated},"status":"{status}","denied_reason_code":null,"is_recurring":false,"total_items":"1","total":"{total}","commission_total":"5.90","currency":"USD","order_id":"1001","affiliate":{{"id":123,"code":"a3y7"}}}}"#
    )
}

/// The seed example from the README.
pub const SEED: &str = r#"{"event_type":"sale","event_id":"ref_evt_123456","order_id":"ORDER_TEST_001","commission_amount":15.00,"sale_amount":75.00,"tracking_id":"YOyqC7"}"#;

/// A real server on 127.0.0.1:0, for what only a socket shows.
pub struct TestServer {
    pub addr: std::net::SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    pub async fn start(app: Arc<App>) -> TestServer {
        Self::start_with_grace(app, Duration::from_secs(10)).await
    }

    pub async fn start_with_grace(app: Arc<App>, grace: Duration) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(hooklatch::serve(
            app,
            listener,
            async move {
                let _ = stopped.await;
            },
            grace,
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// A server around a task started elsewhere, for testing this harness itself.
    pub fn around(addr: std::net::SocketAddr, task: tokio::task::JoinHandle<()>) -> TestServer {
        TestServer {
            addr,
            stop: None,
            task,
        }
    }

    /// Signals shutdown and waits for the server to finish. A panic in `serve` fails the
    /// test here, with the original message, rather than vanishing with the task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Err(e) = (&mut self.task).await {
            match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(e) => panic!("the server task did not finish: {e}"),
            }
        }
    }
}

/// A raw HTTP/1.1 answer.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {:?}", self.status, self.body))
    }
}

/// POSTs a JSON body over a fresh connection (blocking; call from a plain thread).
pub fn http_post(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> RawReply {
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    raw_exchange(addr, head.as_bytes(), body.as_bytes())
}

/// Writes `head` then `body` on a fresh connection and reads the whole answer.
pub fn raw_exchange(addr: std::net::SocketAddr, head: &[u8], body: &[u8]) -> RawReply {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(head).expect("write head");
    // The server may answer and close before reading the body (413); that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_reply(&raw)
}

pub fn parse_reply(raw: &[u8]) -> RawReply {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    RawReply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// Standard base64 of HMAC-SHA256(secret, message): Refersion's and Shopify's scheme.
pub fn base64_hmac(secret: &str, message: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(secret.as_bytes(), message))
}

pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Deletes every event, conversion and conflict, through the backend's own client.
pub fn wipe(url: &DatabaseUrl) {
    execute_sql(
        url,
        "DELETE FROM forward_outbox; DELETE FROM webhook_conflicts; DELETE FROM webhook_events; \
         DELETE FROM conversions;",
    );
}

/// Runs SQL that both dialects accept on the test's database, through the backend's own
/// client, as an operator (or another lane's worker) would change rows behind hooklatch's
/// back.
pub fn execute_sql(url: &DatabaseUrl, sql: &str) {
    match url {
        DatabaseUrl::Sqlite(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute_batch(sql)
                .unwrap();
        }
        // The sync client must neither run nor be dropped on a runtime thread.
        DatabaseUrl::Postgres(url) => std::thread::scope(|s| {
            s.spawn(|| admin_client(url).unwrap().batch_execute(sql).unwrap())
                .join()
                .expect("SQL thread")
        }),
        DatabaseUrl::SqliteMemory => panic!("an in-memory store cannot be reached from outside"),
    }
}

/// One `bigint` a query on a PostgreSQL database answers (a count), from a plain thread:
/// the sync client must neither run nor be dropped on a runtime thread.
pub fn pg_count(url: &str, sql: &str) -> i64 {
    std::thread::scope(|s| {
        s.spawn(|| {
            admin_client(url)
                .unwrap()
                .query_one(sql, &[])
                .unwrap()
                .get(0)
        })
        .join()
        .expect("SQL thread")
    })
}

/// Another client holding an uncommitted insert of one event, as a concurrent delivery
/// of the same id would; `finish(true)` commits it, `finish(false)` rolls it back.
pub struct HeldInsert {
    finish: std::sync::mpsc::Sender<bool>,
    done: std::thread::JoinHandle<()>,
}

impl HeldInsert {
    /// Returns once the row is inserted and the transaction is open.
    pub fn start(url: &DatabaseUrl, source: &str, event_id: &str) -> HeldInsert {
        const INSERT: &str = "INSERT INTO webhook_events (source, external_event_id, event_type, payload, fingerprint, first_seen_at, last_seen_at) \
             VALUES ($1, $2, NULL, '{}', 'held-by-another-client', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')";
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        let (finish, finish_rx) = std::sync::mpsc::channel::<bool>();
        let (url, source, event_id) = (url.clone(), source.to_owned(), event_id.to_owned());
        let done = std::thread::spawn(move || match url {
            DatabaseUrl::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                conn.execute(&INSERT.replace('$', "?"), [&source, &event_id])
                    .unwrap();
                held_tx.send(()).unwrap();
                let commit = finish_rx.recv().unwrap_or(false);
                conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" })
                    .unwrap();
            }
            DatabaseUrl::Postgres(url) => {
                let mut client = admin_client(&url).unwrap();
                let mut tx = client.transaction().unwrap();
                let insert = INSERT.replace("'2026-01-01T00:00:00.000000Z'", "now()");
                tx.execute(&insert, &[&source, &event_id]).unwrap();
                held_tx.send(()).unwrap();
                if finish_rx.recv().unwrap_or(false) {
                    tx.commit().unwrap();
                } else {
                    tx.rollback().unwrap();
                }
            }
            DatabaseUrl::SqliteMemory => panic!("an in-memory store is private to its process"),
        });
        held_rx.recv().expect("the other client holds its insert");
        HeldInsert { finish, done }
    }

    pub fn finish(self, commit: bool) {
        self.finish.send(commit).unwrap();
        self.done.join().unwrap();
    }
}

/// A startup failure of the binary: exit 1, exactly one `hooklatch:` line holding
/// `expect`, no panic or backtrace. Returns all of stderr.
pub fn assert_one_line_failure(output: std::process::Output, expect: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("hooklatch:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains(expect), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    stderr
}
