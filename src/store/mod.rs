//! The store seam: four traits, one per role and named for who calls it ([`Receiving`],
//! [`AdminReads`], [`Outbox`], [`Operations`]), joined in [`Store`]; one folder per
//! backend with one file per role; and the one place (`open`) where a database URL
//! becomes a backend.
//!
//! Store methods are synchronous (rusqlite and the sync `postgres` client both block).
//! Callers on the async side go through [`run_blocking`], never call them directly: the
//! sync `postgres` client panics on a tokio worker thread.

mod backup;
pub(crate) mod counts;
mod postgres;
pub(crate) mod rows;
mod sqlite;
mod thread;
pub mod transfer;
mod url;

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::model::outbox::{
    AttemptRecord, AttemptReport, ForwardBacklog, ForwardInfo, ForwardJob, SourceChange,
    SourceForwarding,
};
use crate::model::{EventId, NewEvent, Outcome, Source, StoredConflict, StoredEvent};
use crate::read::{
    ConversionFilter, ConversionItem, Cursor, EventDetail, EventFilter, EventItem, ExportFilter,
    ExportItem, Pruned, SourceStats, SummaryGroup, Timestamp, TotalsCheck,
};

pub use self::backup::{BackupError, BackupReport};
pub use self::postgres::{PostgresStore, ProcessCall};
pub use self::sqlite::SqliteStore;
pub use self::transfer::{Transfer, open_transfer};
pub use self::url::{DatabaseUrl, UrlError};

/// A store failure. Every variant is answered 503 with `Retry-After`: the provider
/// retries, and nothing was half-written because every write is one transaction.
#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// The store could not be reached, or refused the work (connection lost, read-only
    /// file, disk full).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// No connection, lock or answer within the store timeout.
    #[error("store timed out: {0}")]
    Timeout(String),
    /// Anything else: a bug or a schema the binary does not expect.
    #[error("store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// A short label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Timeout(_) => "timeout",
            StoreError::Internal(_) => "internal",
        }
    }
}

/// Tuning shared by every backend.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool.
    pub pool_size: u32,
    /// Longest wait for a connection (and, on PostgreSQL, to connect).
    pub connect_timeout: Duration,
    /// Longest wait for a lock or a statement before the request gets a 503.
    pub statement_timeout: Duration,
    /// SQLite only: `synchronous=FULL` (true, the default) makes every acknowledged event
    /// survive power loss; false uses `NORMAL`, which survives a process crash only.
    pub sqlite_full_sync: bool,
    /// PostgreSQL only: each connection keeps the receive call as a named prepared
    /// statement (true, the default). False sends every statement unnamed and no startup
    /// `options`, so a transaction pooler (PgBouncer 1.18) can carry the connections;
    /// still one round trip per webhook.
    pub pg_prepared_statements: bool,
    /// PostgreSQL only: how often this instance folds the totals' delta rows (migration
    /// 008). Reads add the unfolded deltas, so this bounds their number, not correctness.
    pub totals_fold_every: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            sqlite_full_sync: true,
            pg_prepared_statements: true,
            totals_fold_every: Duration::from_secs(1),
        }
    }
}

/// A delivery being recorded: the outcome, and the event handed back so its body is
/// never copied.
pub type Pending = Pin<Box<dyn Future<Output = Result<(Outcome, NewEvent), StoreError>> + Send>>;

/// What every backend promises: the four roles below, so `Arc<dyn Store>` serves every
/// caller. The contract suite (`tests/contract`) checks each promise against every
/// backend. Callers import the role they use.
pub trait Store: Receiving + AdminReads + Outbox + Operations {}

impl<T: Receiving + AdminReads + Outbox + Operations> Store for T {}

/// The hot path: what the webhook endpoint and the readiness probe call.
pub trait Receiving: Send + Sync + 'static {
    /// "sqlite" or "postgres", for logs and test names.
    fn backend(&self) -> &'static str;

    /// Records one delivery of an event, exactly once per `(source, event_id)`.
    ///
    /// - New id: inserts the event and its conversion (if any) in one transaction and
    ///   returns `Processed` only after the commit is durable.
    /// - Known id, same fingerprint: `Duplicate` with the original ids; counts the
    ///   delivery (`delivery_count`, `last_seen_at`) without waiting for an fsync.
    /// - Known id, different fingerprint: `Conflict` with the original ids; the original
    ///   is untouched, the delivery is counted, and kept in `webhook_conflicts` while
    ///   fewer than [`KEPT_CONFLICTS`] are kept for the event.
    ///
    /// A conversion delivery (`external_conversion_id` set) creates its conversion or
    /// moves it in the same transaction, unless it is stale (SPEC §2): then the event is
    /// still `Processed`, linked to the conversion, with `applied` false. Deliveries of
    /// one conversion serialise on its row, so none is lost.
    ///
    /// Concurrent calls for one id wait for the first transaction: if it commits they are
    /// duplicates, if it rolls back one of them becomes the first. The unique indexes
    /// decide, never an application lock, so this holds across processes.
    fn process(&self, event: &NewEvent) -> Result<Outcome, StoreError>;

    /// [`Receiving::process`] for async callers (the HTTP layer), with the same
    /// guarantees. `deadline` is the request's one deadline, and the backend enforces it:
    /// work not started by then is dropped and work still running is stopped, so a
    /// timeout error means nothing was recorded. The default runs `process` on the
    /// blocking pool and relies on the backend's own statement limits; a backend
    /// overrides it where it can honour the deadline exactly or avoid the hop.
    fn process_async(self: Arc<Self>, event: NewEvent, deadline: Instant) -> Pending {
        let _ = deadline;
        Box::pin(run_blocking(move || {
            let outcome = self.process(&event)?;
            Ok((outcome, event))
        }))
    }

    /// Succeeds when the store answers a trivial query and can write (SPEC §7: /readyz
    /// says 503 for a store that cannot write, e.g. SQLite with its file unwritable).
    fn ping(&self) -> Result<(), StoreError>;
}

/// Reads for the admin API, the console and the commands. They read committed rows only
/// and never block a delivery; lists return `limit` rows at most, newest first, after the
/// cursor when one is given. Both backends give the same answers (contract suite).
pub trait AdminReads {
    /// The stored event for `(source, event_id)`.
    fn event(&self, source: &Source, id: &EventId) -> Result<Option<StoredEvent>, StoreError>;

    /// Conflicting deliveries kept for `(source, event_id)`, oldest first.
    fn conflicts(&self, source: &Source, id: &EventId) -> Result<Vec<StoredConflict>, StoreError>;

    /// Events matching `filter`, newest first by `(first_seen_at, id)`, each with its
    /// forwarding state (or `None` when it has no outbox entry).
    fn list_events(
        &self,
        filter: &EventFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<EventItem>, StoreError>;

    /// Conversions matching `filter`, newest first by `(created_at, id)`.
    fn list_conversions(
        &self,
        filter: &ConversionFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ConversionItem>, StoreError>;

    /// One conversion by its id.
    fn conversion_by_id(&self, id: i64) -> Result<Option<ConversionItem>, StoreError>;

    /// Count and exact sums of conversions per status and currency, sorted by status then
    /// currency, nulls first. Read from the totals kept as events arrive, not a scan.
    fn conversion_summary(&self) -> Result<Vec<SummaryGroup>, StoreError>;

    /// The kept forward attempts of one event, newest first.
    fn forward_history(&self, webhook_event_id: i64) -> Result<Vec<AttemptRecord>, StoreError>;

    /// Per-source counts, sorted by source. Read from the totals kept as events arrive.
    fn source_stats(&self) -> Result<Vec<SourceStats>, StoreError>;

    /// Events with their payloads, oldest first by `(first_seen_at, id)`, after the
    /// cursor.
    fn export_events(
        &self,
        filter: &ExportFilter,
        after: Option<&Cursor>,
        limit: u32,
    ) -> Result<Vec<ExportItem>, StoreError>;

    /// One event with everything the admin side shows about it (the API, the console and
    /// `hooklatch events show`). `None` when no such event exists, or when the names
    /// cannot be a source or an event id at all (nothing could be stored under them).
    fn event_detail(
        &self,
        source: &str,
        event_id: &str,
    ) -> Result<Option<EventDetail>, StoreError> {
        let (Some(source), Ok(event_id)) =
            (Source::parse(source), EventId::parse(event_id, "event_id"))
        else {
            return Ok(None);
        };
        let Some(event) = self.event(&source, &event_id)? else {
            return Ok(None);
        };
        let filter = EventFilter {
            source: Some(source.clone()),
            event_id: Some(event_id.as_str().to_owned()),
            ..EventFilter::default()
        };
        let Some(mut item) = self.list_events(&filter, None, 1)?.into_iter().next() else {
            return Ok(None);
        };
        if let Some(forward) = item.forward.as_mut() {
            forward.history = Some(self.forward_history(item.webhook_event_id)?);
        }
        let conflicts = self.conflicts(&source, &event_id)?;
        let conversion = match event.conversion_id {
            Some(id) => self.conversion_by_id(id)?,
            None => None,
        };
        Ok(Some(EventDetail {
            item,
            payload: event.payload,
            fingerprint: event.fingerprint,
            conflicts,
            conversion,
        }))
    }
}

/// Operations an operator runs: schema, retention, backup (and the coming copy).
pub trait Operations {
    /// Applies pending migrations, each once, in order. Safe to call from several
    /// processes at once.
    fn migrate(&self) -> Result<(), StoreError>;

    /// Clears the payloads of events last seen before `before` and of conflicts received
    /// before it (or only counts them when `dry_run`). Rows, keys, fingerprints and counts
    /// stay, so a later retry is still a duplicate. A payload still owed to the app (its
    /// forward pending or failed) is never cleared, and `dry_run` counts exactly what a
    /// prune would clear. Works in short batches.
    fn prune_payloads(&self, before: &Timestamp, dry_run: bool) -> Result<Pruned, StoreError>;

    /// Writes a consistent copy of the live store to a new file at `path` while other
    /// connections keep writing, checks the copy, and reports its size. Never overwrites
    /// an existing file; leaves no file behind on failure. A backend whose data is not
    /// one file answers `Unsupported`, naming the tool to use instead.
    fn backup_to(&self, path: &Path) -> Result<BackupReport, BackupError>;

    /// Rebuilds the kept totals (what `stats` and `conversions/summary` read) from the
    /// rows, while deliveries go on: each is counted once, in the recount or after it.
    /// For `verify-totals --repair`, and after anything that wrote rows without them.
    fn recompute_totals(&self) -> Result<(), StoreError>;

    /// Recounts every row and compares the recount with the kept totals, both read in
    /// one snapshot (after this process's pending duplicate counts are committed).
    fn verify_totals(&self) -> Result<TotalsCheck, StoreError>;

    /// Commits what the store still holds in memory (duplicate counts, queued writes)
    /// and stops its background threads, waiting at most `within`; true when all of it
    /// is done. The binary calls it at shutdown instead of relying on `Drop`: a blocking
    /// task the runtime abandoned (a prune waiting on a lock) may still hold the store,
    /// and then it is never dropped. Writes after it are refused or stay uncommitted.
    /// A store without background work has nothing to do.
    fn close(&self, _within: Duration) -> bool {
        true
    }
}

/// The forwarding outbox (SPEC §6): what the forward worker and the forward commands
/// call. Each backend implements it beside its SQL, in its `outbox` submodule.
pub trait Outbox {
    /// Leases up to `limit` due pending outbox entries (oldest due first) to `owner` for
    /// `lease`, and returns them with what to send. An entry whose lease has not expired
    /// is never returned, so across instances no two workers hold one entry at once; a
    /// lease left by a dead worker expires and the entry becomes claimable again.
    /// Entries of a paused source are never claimed (SPEC §6.1).
    fn claim_forwards(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<ForwardJob>, StoreError> {
        self.claim_forwards_except(owner, lease, limit, &[])
    }

    /// [`Outbox::claim_forwards`], also skipping the entries of `paced` (sources the
    /// caller may not start another attempt for yet).
    fn claim_forwards_except(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
        paced: &[String],
    ) -> Result<Vec<ForwardJob>, StoreError>;

    /// Records one attempt of a leased entry (counting it in `attempts`), keeps it in
    /// the event's history (the newest [`HISTORY_KEPT`](crate::model::outbox::HISTORY_KEPT)),
    /// counts it against the source's consecutive failures and ends the lease, all in
    /// one transaction. Ignored when `owner` no longer holds the entry. Returns the
    /// source when this attempt paused it (its `pause_after`-th consecutive failure):
    /// across instances exactly one caller gets it per pause.
    fn record_forward(
        &self,
        webhook_event_id: i64,
        owner: &str,
        report: &AttemptReport,
    ) -> Result<Option<SourceChange>, StoreError>;

    /// Ends a lease without an attempt, the entry due again after `delay` (the
    /// worker's pace). Ignored when `owner` no longer holds the entry.
    fn postpone_forward(
        &self,
        webhook_event_id: i64,
        owner: &str,
        delay: Duration,
    ) -> Result<(), StoreError>;

    /// Every source with outbox entries or a stored forwarding state, by name.
    fn forwarding_sources(&self) -> Result<Vec<SourceForwarding>, StoreError>;

    /// Pauses (`true`) or resumes a source's forwarding for every process on the store.
    /// Resuming starts its failure count again. Returns the source when its state
    /// changed, `None` when it already was so.
    fn set_forwarding_paused(
        &self,
        source: &Source,
        paused: bool,
    ) -> Result<Option<SourceChange>, StoreError>;

    /// Queues every recorded event of `source` first seen in `[since, until)` again,
    /// whatever its state, with a fresh schedule. Returns how many.
    fn replay_forwards(
        &self,
        source: &Source,
        since: &Timestamp,
        until: Option<&Timestamp>,
    ) -> Result<u64, StoreError>;

    /// Ends the leases of `owner` (every lease when `None`) without counting an attempt,
    /// so the entries are claimable at once. Returns how many.
    fn release_forwards(&self, owner: Option<&str>) -> Result<u64, StoreError>;

    /// Queues one event to be forwarded now, whatever its state (an event without an
    /// entry gets one), with a fresh retry schedule. `None` when the event is unknown.
    fn requeue_forward(&self, source: &Source, id: &EventId) -> Result<Option<i64>, StoreError>;

    /// Queues again every entry of `source` (of every source when `None`); only the
    /// `failed` ones when `failed_only`. Returns how many.
    fn requeue_forwards(
        &self,
        source: Option<&Source>,
        failed_only: bool,
    ) -> Result<u64, StoreError>;

    /// The forwarding state of one event; `None` when it has no outbox entry.
    fn forward_state(
        &self,
        source: &Source,
        id: &EventId,
    ) -> Result<Option<ForwardInfo>, StoreError>;

    /// Pending and failed counts and the age of the oldest pending entry.
    fn forward_backlog(&self) -> Result<ForwardBacklog, StoreError>;
}

/// Opens the backend the URL names. Blocks (it connects), so async callers use
/// [`run_blocking`]. Does not migrate.
pub fn open(url: &DatabaseUrl, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match url {
        DatabaseUrl::Sqlite(path) => Arc::new(SqliteStore::open(path, options)?),
        DatabaseUrl::SqliteMemory => Arc::new(SqliteStore::open_memory(options)?),
        DatabaseUrl::Postgres(url) => Arc::new(PostgresStore::open(url, options)?),
    })
}

/// Runs a blocking store call on tokio's blocking pool. A panic inside becomes an
/// `Internal` error (a 503 for the client) instead of tearing down the connection.
pub async fn run_blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Internal(format!("store task failed: {e}")))?
}

/// One migration, as `migrations/<backend>/<name>.sql`.
pub struct MigrationFile {
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of one backend folder, in order. Both backends expand the same list,
/// so their folders cannot drift apart (a test also compares the folders on disk).
macro_rules! migration_files {
    ($backend:literal) => {
        [
            $crate::store::migration_file!($backend, "001_conversions"),
            $crate::store::migration_file!($backend, "002_webhook_idempotency"),
            $crate::store::migration_file!($backend, "003_conversion_lifecycle"),
            $crate::store::migration_file!($backend, "004_forward_outbox"),
            $crate::store::migration_file!($backend, "005_admin_indexes"),
            $crate::store::migration_file!($backend, "006_forward_backlog_index"),
            $crate::store::migration_file!($backend, "007_forward_care"),
            $crate::store::migration_file!($backend, "008_totals"),
            $crate::store::migration_file!($backend, "009_lookup_indexes"),
            $crate::store::migration_file!($backend, "010_forward_list_order"),
            $crate::store::migration_file!($backend, "011_bulk_totals"),
        ]
    };
}

macro_rules! migration_file {
    ($backend:literal, $name:literal) => {
        $crate::store::MigrationFile {
            name: $name,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/",
                $name,
                ".sql"
            )),
        }
    };
}

pub(crate) use {migration_file, migration_files};

/// Names of the migrations compiled in, for the test that compares them with the folders.
pub fn migration_names() -> Vec<&'static str> {
    migration_files!("sqlite").iter().map(|m| m.name).collect()
}

/// `001_conversions` becomes refinery's `V1__conversions`; refinery records each applied
/// migration with a checksum in `refinery_schema_history`.
fn refinery_migrations(files: &[MigrationFile]) -> Result<Vec<refinery::Migration>, StoreError> {
    files
        .iter()
        .map(|file| {
            let (number, rest) = file
                .name
                .split_once('_')
                .ok_or_else(|| StoreError::Internal(format!("bad migration name {}", file.name)))?;
            let version: u32 = number
                .parse()
                .map_err(|_| StoreError::Internal(format!("bad migration name {}", file.name)))?;
            refinery::Migration::unapplied(&format!("V{version}__{rest}"), file.sql)
                .map_err(|e| StoreError::Internal(format!("migration {}: {e}", file.name)))
        })
        .collect()
}

/// Rows a prune batch clears per transaction.
pub(crate) const PRUNE_BATCH: i64 = 1000;

/// At most this many conflicting deliveries of one event are kept with their payloads
/// (SPEC §5.3); every one is counted. Both backends' SQL carries the same number.
pub const KEPT_CONFLICTS: i64 = 16;
