//! `hooklatch import FILE|-`: replays exported JSON lines through the same preparation and
//! the same idempotent step as a delivery, without a signature check (the operator's own
//! data), keeping each line's history: its timestamps and `delivery_count` (SPEC §5.2).
//! Importing a file twice changes nothing the second time, and an export from one store
//! imported into another moves the events and the conversions they make.
//!
//! Lines go to the store in batches ([`IMPORT_BATCH`] per transaction), not one commit
//! each, written on a thread of their own while the next lines are prepared. A line that cannot be read at all (not JSON, not an object) stops the import
//! there: the lines before it are recorded, the rest are not.
//!
//! A line carries the ids the provider originally sent in headers only as its
//! `event_id`/`event_type`, so those headers are rebuilt from them for the preset's
//! preparation; the exported id then stands, whatever the body says.

use std::io::BufRead;
use std::sync::mpsc;

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
    #[error("lines {first} to {last}: {source}; none of them was recorded")]
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

/// Lines prepared and not yet sent to the store, with the number of the first one.
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

/// Imports every line of `input`. Invalid lines are counted and described on `errors`;
/// an unreadable line or input, or a failing store, stops the import (what was recorded
/// before stays recorded).
///
/// This thread reads and prepares the lines while another writes the batches before
/// them to the store, in the order of the input (a lifecycle event follows its sale).
pub fn run(
    store: &dyn Transfer,
    sources: &Sources,
    input: impl BufRead,
    errors: &mut dyn std::io::Write,
) -> Result<ImportCounts, (ImportCounts, ImportError)> {
    let (send, receive) = mpsc::sync_channel::<Batch>(AHEAD);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || write_batches(store, receive));
        let (invalid, stopped) = read_batches(sources, input, errors, send);
        let (mut counts, written) = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        counts.invalid = invalid;
        // A store failure stops the reading (its channel closes): it is the cause.
        match (written, stopped) {
            (Err(error), _) | (Ok(()), Some(error)) => Err((counts, error)),
            (Ok(()), None) => Ok(counts),
        }
    })
}

/// Batches prepared ahead of the one the store is writing.
const AHEAD: usize = 2;

/// Writes the batches in the order they come, until the reading ends or one fails.
fn write_batches(
    store: &dyn Transfer,
    receive: mpsc::Receiver<Batch>,
) -> (ImportCounts, Result<(), ImportError>) {
    let mut counts = ImportCounts::default();
    for mut batch in receive {
        if let Err(error) = batch.flush(store, &mut counts) {
            return (counts, Err(error));
        }
    }
    (counts, Ok(()))
}

/// Reads and prepares the lines, and sends them on in batches. Answers the invalid lines
/// counted, and why it stopped early, if it did (the lines before are sent). A closed
/// channel (the store failed) stops it without a reason of its own.
fn read_batches(
    sources: &Sources,
    input: impl BufRead,
    errors: &mut dyn std::io::Write,
    send: mpsc::SyncSender<Batch>,
) -> (u64, Option<ImportError>) {
    let mut invalid = 0;
    let mut batch = Batch::new();
    for (index, line) in input.lines().enumerate() {
        let number = index as u64 + 1;
        let line = match line {
            Ok(line) => line,
            Err(source) => {
                let _ = send.send(batch);
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
                let _ = send.send(batch);
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
        if batch.events.is_empty() {
            batch.first = number;
        }
        batch.last = number;
        batch.events.push(prepared);
        if batch.events.len() >= IMPORT_BATCH
            && send
                .send(std::mem::replace(&mut batch, Batch::new()))
                .is_err()
        {
            return (invalid, None);
        }
    }
    let _ = send.send(batch);
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
