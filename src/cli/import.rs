//! `hooklatch import FILE|-`: replays exported JSON lines through the same preparation and
//! the same idempotent step as a delivery, without a signature check (the operator's own
//! data), keeping each line's history: its timestamps and `delivery_count` (SPEC §5.2).
//! Importing a file twice changes nothing the second time, and an export from one store
//! imported into another moves the events and the conversions they make.
//!
//! Lines go to the store in batches ([`IMPORT_BATCH`] per transaction), not one commit
//! each, written on threads of their own (one per lane of the store: two connections on
//! PostgreSQL, the one writer on SQLite) while the next lines are prepared. A line that
//! cannot be read at all (not JSON, not an object) stops the import there: the lines
//! before it are recorded, the rest are not.
//!
//! A line carries the ids the provider originally sent in headers only as its
//! `event_id`/`event_type`, so those headers are rebuilt from them for the preset's
//! preparation; the exported id then stands, whatever the body says.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

use serde::Deserialize;
use serde_json::value::RawValue;
use warp::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Sources;
use crate::json::parse_object;
use crate::model::clock::now_text;
use crate::model::{EventId, History, NewEvent, Outcome, Source};
use crate::read::Timestamp;
use crate::sources::{IdLocation, Preset};
use crate::store::StoreError;
use crate::store::transfer::{IMPORT_BATCH, Transfer};

#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ImportArgs {
    /// The exported file, or - for stdin.
    pub file: std::path::PathBuf,
}

/// What happened to the lines of one import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportCounts {
    pub processed: u64,
    pub duplicate: u64,
    pub conflict: u64,
    pub invalid: u64,
}

impl std::fmt::Display for ImportCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} processed, {} duplicate, {} conflict, {} invalid",
            self.processed, self.duplicate, self.conflict, self.invalid
        )
    }
}

/// Why an import stopped before the end of its input.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: cannot read: {source}")]
    Read { line: u64, source: std::io::Error },
    #[error(
        "line {line}: not a JSON object ({reason}); stopped there, the lines before it are recorded"
    )]
    Unreadable { line: u64, reason: String },
    #[error(
        "a batch of lines {first} to {last} failed: {source}; every line before {first} is recorded, later ones may be in part, and importing the file again is safe"
    )]
    Store {
        first: u64,
        last: u64,
        source: StoreError,
    },
}

/// One exported line. The payload stays the text it is in the line (key order, number
/// text), which becomes the stored body.
#[derive(Debug, Deserialize)]
struct Line<'a> {
    source: String,
    event_id: String,
    #[serde(default)]
    event_type: Option<String>,
    #[serde(borrow)]
    payload: &'a RawValue,
    #[serde(default)]
    first_seen_at: Option<String>,
    #[serde(default)]
    last_seen_at: Option<String>,
    #[serde(default)]
    delivery_count: Option<i64>,
}

/// Lines prepared and not yet sent to the store, with the numbers of the first and the
/// last of them (with several lanes, the lines between belong to other lanes too).
struct Batch {
    events: Vec<(NewEvent, History)>,
    first: u64,
    last: u64,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            events: Vec::with_capacity(IMPORT_BATCH),
            first: 0,
            last: 0,
        }
    }

    fn push(&mut self, number: u64, prepared: (NewEvent, History)) {
        if self.events.is_empty() {
            self.first = number;
        }
        self.last = number;
        self.events.push(prepared);
    }

    /// Sends the batch and counts what the store did with it.
    fn flush(
        &mut self,
        store: &dyn Transfer,
        counts: &mut ImportCounts,
    ) -> Result<(), ImportError> {
        if self.events.is_empty() {
            return Ok(());
        }
        let events = std::mem::take(&mut self.events);
        let outcomes = store
            .import_batch(events)
            .map_err(|source| ImportError::Store {
                first: self.first,
                last: self.last,
                source,
            })?;
        for outcome in outcomes {
            match outcome {
                Outcome::Processed(_) => counts.processed += 1,
                Outcome::Duplicate(_) => counts.duplicate += 1,
                Outcome::Conflict(_) => counts.conflict += 1,
            }
        }
        Ok(())
    }
}

/// What a lane's writer is sent.
enum Work {
    Batch(Batch),
    /// Answered once every batch sent before it is written (or failed).
    Drained(mpsc::SyncSender<()>),
}

/// Imports every line of `input`. Invalid lines are counted and described on `errors`;
/// an unreadable line or input, or a failing store, stops the import (what was recorded
/// before stays recorded).
///
/// This thread reads and prepares the lines while writers, one per lane of the store
/// ([`Transfer::import_lanes`]), write the batches before them. Lines that touch the
/// same event or the same conversion are written in the order of the input (a lifecycle
/// event follows its sale), as [`Router`] explains.
pub fn run(
    store: &dyn Transfer,
    sources: &Sources,
    input: impl BufRead,
    errors: &mut dyn std::io::Write,
) -> Result<ImportCounts, (ImportCounts, ImportError)> {
    let lanes = store.import_lanes().max(1);
    std::thread::scope(|scope| {
        let written: Vec<Arc<AtomicU64>> = (0..lanes).map(|_| Arc::default()).collect();
        let (sends, writers): (Vec<_>, Vec<_>) = written
            .iter()
            .map(|written| {
                let (send, receive) = mpsc::sync_channel::<Work>(AHEAD);
                let written = written.clone();
                (
                    send,
                    scope.spawn(move || write_batches(store, receive, &written)),
                )
            })
            .unzip();
        let (invalid, stopped) = read_batches(sources, input, errors, sends, written);
        let mut counts = ImportCounts {
            invalid,
            ..ImportCounts::default()
        };
        // The earliest failed batch is the one to report: every line before it is recorded.
        let mut failed: Option<ImportError> = None;
        for writer in writers {
            let (written, result) = writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            counts.processed += written.processed;
            counts.duplicate += written.duplicate;
            counts.conflict += written.conflict;
            if let Err(error) = result
                && failed
                    .as_ref()
                    .is_none_or(|f| first_line(&error) < first_line(f))
            {
                failed = Some(error);
            }
        }
        // A store failure stops the reading (its channel closes): it is the cause.
        match failed.or(stopped) {
            Some(error) => Err((counts, error)),
            None => Ok(counts),
        }
    })
}

fn first_line(error: &ImportError) -> u64 {
    match error {
        ImportError::Store { first, .. } => *first,
        ImportError::Read { line, .. } | ImportError::Unreadable { line, .. } => *line,
    }
}

/// Batches prepared ahead of the one the store is writing, per lane.
const AHEAD: usize = 2;

/// Writes the batches in the order they come, until the reading ends or one fails.
fn write_batches(
    store: &dyn Transfer,
    receive: mpsc::Receiver<Work>,
    written: &AtomicU64,
) -> (ImportCounts, Result<(), ImportError>) {
    let mut counts = ImportCounts::default();
    for work in receive {
        match work {
            Work::Batch(mut batch) => {
                if let Err(error) = batch.flush(store, &mut counts) {
                    return (counts, Err(error));
                }
                written.fetch_add(1, Ordering::Release);
            }
            Work::Drained(done) => {
                let _ = done.send(());
            }
        }
    }
    (counts, Ok(()))
}

/// Which lane each line goes to. A line touches its event's key and, for a conversion
/// delivery (Refersion's `external_conversion_id`), that conversion's key; lines touching
/// the same key must be written in file order:
/// - a line with a conversion key goes to that key's lane (every delivery of one
///   conversion in one lane, in order), any other line to its event key's lane;
/// - a line whose event key an earlier line took to another lane (a file that repeats an
///   event id with a different conversion; an export never does) waits, if that earlier
///   line is not written yet, until every lane has written what it was sent. Once the
///   earlier line is committed, the later one finds its event in the store, as a strictly
///   ordered import would, whatever lane it runs in.
///
/// So only the event keys of lines not yet written are remembered (a few thousand, as
/// 64-bit hashes; two that collide only add a wait, never a reordering), however long
/// the file. One lane remembers nothing.
struct Router {
    /// Event key → the lane and that lane's batch number its line went to.
    pending: HashMap<u64, (usize, u64)>,
}

/// Where a line goes, and whether the lanes must be drained first.
struct Route {
    lane: usize,
    drain_first: bool,
}

impl Router {
    fn new() -> Router {
        Router {
            pending: HashMap::new(),
        }
    }

    fn route(&mut self, event: &NewEvent, lanes: &Lanes) -> Route {
        let count = lanes.sends.len();
        if count == 1 {
            return Route {
                lane: 0,
                drain_first: false,
            };
        }
        let event_key = key_hash(&("event", event.source.as_str(), event.event_id.as_str()));
        let conversion = event
            .conversion
            .as_ref()
            .and_then(|c| c.external_conversion_id.as_deref());
        let routing = match conversion {
            Some(id) => key_hash(&("conversion", event.source.as_str(), id)),
            None => event_key,
        };
        let lane = (routing % count as u64) as usize;
        let drain_first = self
            .pending
            .get(&event_key)
            .is_some_and(|&(before, batch)| before != lane && batch >= lanes.written(before));
        if drain_first {
            // Every line read so far will be written before this one is sent.
            self.pending.clear();
        }
        self.pending.insert(event_key, (lane, lanes.sent[lane]));
        Route { lane, drain_first }
    }

    /// Forgets the lines already written, after a batch is sent.
    fn forget_written(&mut self, lanes: &Lanes) {
        self.pending
            .retain(|_, &mut (lane, batch)| batch >= lanes.written(lane));
    }
}

fn key_hash(key: &impl Hash) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    hasher.finish()
}

/// The lanes' channels, the batches being filled for them, and how far each has got.
struct Lanes {
    sends: Vec<mpsc::SyncSender<Work>>,
    filling: Vec<Batch>,
    /// Batches sent to each lane; the one filling is number `sent[lane]`.
    sent: Vec<u64>,
    /// Batches each lane's writer has written, counted by the writer.
    written: Vec<Arc<AtomicU64>>,
}

/// A lane's writer stopped (its batch failed): the reading stops too.
struct Closed;

impl Lanes {
    fn written(&self, lane: usize) -> u64 {
        self.written[lane].load(Ordering::Acquire)
    }

    fn send(&mut self, lane: usize) -> Result<(), Closed> {
        let batch = std::mem::replace(&mut self.filling[lane], Batch::new());
        if batch.events.is_empty() {
            return Ok(());
        }
        self.sent[lane] += 1;
        self.sends[lane]
            .send(Work::Batch(batch))
            .map_err(|_| Closed)
    }

    /// Sends every batch being filled, so the writers have all of them.
    fn send_all(&mut self) -> Result<(), Closed> {
        (0..self.sends.len()).try_for_each(|lane| self.send(lane))
    }

    /// At the end, or when the reading stops early: every line read so far goes to its
    /// lane, whichever lanes failed, so each line before the first failure is recorded.
    fn send_left(&mut self) {
        for lane in 0..self.sends.len() {
            let _ = self.send(lane);
        }
    }

    /// Returns once every lane has written every batch sent to it.
    fn drain(&mut self) -> Result<(), Closed> {
        self.send_all()?;
        let (done, heard) = mpsc::sync_channel(self.sends.len());
        for send in &self.sends {
            send.send(Work::Drained(done.clone())).map_err(|_| Closed)?;
        }
        drop(done);
        (0..self.sends.len()).try_for_each(|_| heard.recv().map_err(|_| Closed))
    }
}

/// Reads and prepares the lines, and sends them on in batches. Answers the invalid lines
/// counted, and why it stopped early, if it did (the lines before are sent). A closed
/// channel (the store failed) stops it without a reason of its own.
fn read_batches(
    sources: &Sources,
    input: impl BufRead,
    errors: &mut dyn std::io::Write,
    sends: Vec<mpsc::SyncSender<Work>>,
    written: Vec<Arc<AtomicU64>>,
) -> (u64, Option<ImportError>) {
    let mut invalid = 0;
    let mut router = Router::new();
    let mut lanes = Lanes {
        filling: sends.iter().map(|_| Batch::new()).collect(),
        sent: vec![0; sends.len()],
        sends,
        written,
    };
    for (index, line) in input.lines().enumerate() {
        let number = index as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(source) => {
                lanes.send_left();
                let error = ImportError::Read {
                    line: number,
                    source,
                };
                return (invalid, Some(error));
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let prepared = match prepare(sources, &line) {
            Ok(prepared) => prepared,
            Err(Refused::Unreadable(reason)) => {
                lanes.send_left();
                let error = ImportError::Unreadable {
                    line: number,
                    reason,
                };
                return (invalid, Some(error));
            }
            Err(Refused::Invalid(reason)) => {
                invalid += 1;
                let _ = writeln!(errors, "line {number}: invalid: {reason}");
                continue;
            }
        };
        let route = router.route(&prepared.0, &lanes);
        if route.drain_first && lanes.drain().is_err() {
            lanes.send_left();
            return (invalid, None);
        }
        lanes.filling[route.lane].push(number, prepared);
        if lanes.filling[route.lane].events.len() >= IMPORT_BATCH {
            if lanes.send(route.lane).is_err() {
                lanes.send_left();
                return (invalid, None);
            }
            router.forget_written(&lanes);
        }
    }
    lanes.send_left();
    (invalid, None)
}

/// Why a line was not imported.
enum Refused {
    /// Not JSON, or not an object: the input is not an export, so the import stops.
    Unreadable(String),
    /// An object that is not an importable event: counted, and the import goes on.
    Invalid(String),
}

/// A line as the event a delivery of it would have made, with its history.
fn prepare(sources: &Sources, text: &str) -> Result<(NewEvent, History), Refused> {
    let line: Line = serde_json::from_str(text).map_err(|e| {
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
            Ok(_) => Refused::Invalid(format!("not an exported event: {e}")),
            Err(e) => Refused::Unreadable(e.to_string()),
        }
    })?;
    let invalid = Refused::Invalid;
    let source = Source::parse(&line.source)
        .ok_or_else(|| invalid(format!("source {:?} is not a source name", line.source)))?;
    let event_id =
        EventId::parse(&line.event_id, "event_id").map_err(|e| invalid(e.to_string()))?;
    let raw = line.payload.get();
    let body = match raw.trim_start().starts_with('{') {
        true => parse_object(raw.as_bytes()).map_err(|e| invalid(e.to_string()))?,
        false => {
            return Err(invalid(
                "the payload was pruned or is not a JSON object".into(),
            ));
        }
    };
    let history = history(&line).map_err(invalid)?;
    let preset = sources.settings(&source).preset;
    let headers = headers(&preset, &line);
    let mut event = preset
        .prepare(&source, &headers, raw.as_bytes(), &body)
        .map_err(|e| invalid(e.to_string()))?;
    event.event_id = event_id;
    event.event_type = line.event_type;
    event.check_storable().map_err(|e| invalid(e.to_string()))?;
    Ok((event, history))
}

/// The line's timestamps and count, as stored text; a line without them (written by
/// hand) is one delivery seen now.
fn history(line: &Line) -> Result<History, String> {
    let time = |text: &Option<String>, field: &str| {
        text.as_deref()
            .map(|t| {
                Timestamp::parse(t, field)
                    .map(|t| t.as_str().to_owned())
                    .map_err(|e| e.to_string())
            })
            .transpose()
    };
    let first_seen_at = time(&line.first_seen_at, "first_seen_at")?.unwrap_or_else(now_text);
    let last_seen_at =
        time(&line.last_seen_at, "last_seen_at")?.unwrap_or_else(|| first_seen_at.clone());
    if last_seen_at < first_seen_at {
        return Err("last_seen_at is before first_seen_at".into());
    }
    let delivery_count = line.delivery_count.unwrap_or(1);
    if delivery_count < 1 {
        return Err("delivery_count must be at least 1".into());
    }
    Ok(History {
        first_seen_at,
        last_seen_at,
        delivery_count,
    })
}

/// The headers each preset reads its event id and type from, rebuilt from the line.
fn headers(preset: &Preset, line: &Line) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &str, value: &str| {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.insert(name, value);
        }
    };
    let id = line.event_id.as_str();
    set("webhook-id", id);
    set("X-Shopify-Event-Id", id);
    set("X-GitHub-Delivery", id);
    if let Some(kind) = &line.event_type {
        set("X-Shopify-Topic", kind);
        set("X-GitHub-Event", kind);
    }
    // Refersion's id without a body event_id is `Topic:id`.
    let topic = id
        .split_once(':')
        .map(|(topic, _)| topic)
        .or(line.event_type.as_deref());
    if let Some(topic) = topic {
        set("Refersion-Topic", topic);
    }
    if let Preset::Generic(scheme) = preset
        && let Some(IdLocation::Header(name)) = &scheme.id
    {
        set(name, id);
    }
    headers
}
