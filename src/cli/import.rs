//! `hooklatch import FILE|-`: replays exported JSON lines through the same preparation and
//! the same idempotent `Store::process` step as a delivery, without a signature check
//! (the operator's own data). Importing a file twice changes nothing the second time,
//! and an export from one store imported into another moves the events and the
//! conversions they make.
//!
//! A line carries the ids the provider originally sent in headers only as its
//! `event_id`/`event_type`, so those headers are rebuilt from them for the preset's
//! preparation; the exported id then stands, whatever the body says.

use std::io::BufRead;

use serde::Deserialize;
use serde_json::Value;
use warp::http::{HeaderMap, HeaderName, HeaderValue};

use crate::config::Sources;
use crate::model::{EventId, NewEvent, Outcome, Source};
use crate::sources::{IdLocation, Preset};
use crate::store::{Store, StoreError};

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
    #[error("line {line}: {source}")]
    Store { line: u64, source: StoreError },
}

/// One exported line; other fields (timestamps, counts) are the source store's history
/// and are not replayed.
#[derive(Debug, Deserialize)]
struct Line {
    source: String,
    event_id: String,
    #[serde(default)]
    event_type: Option<String>,
    payload: Value,
}

/// Imports every line of `input`. Invalid lines are counted and described on `errors`;
/// an unreadable input or a failing store stops the import.
pub fn run(
    store: &dyn Store,
    sources: &Sources,
    input: impl BufRead,
    errors: &mut dyn std::io::Write,
) -> Result<ImportCounts, (ImportCounts, ImportError)> {
    let mut counts = ImportCounts::default();
    for (index, line) in input.lines().enumerate() {
        let number = index as u64 + 1;
        let line = line.map_err(|source| {
            (
                counts,
                ImportError::Read {
                    line: number,
                    source,
                },
            )
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let event = match prepare(sources, &line) {
            Ok(event) => event,
            Err(reason) => {
                counts.invalid += 1;
                let _ = writeln!(errors, "line {number}: invalid: {reason}");
                continue;
            }
        };
        match store.process(&event) {
            Ok(Outcome::Processed(_)) => counts.processed += 1,
            Ok(Outcome::Duplicate(_)) => counts.duplicate += 1,
            Ok(Outcome::Conflict(_)) => counts.conflict += 1,
            Err(source) => {
                return Err((
                    counts,
                    ImportError::Store {
                        line: number,
                        source,
                    },
                ));
            }
        }
    }
    Ok(counts)
}

/// A line as the event a delivery of it would have made.
fn prepare(sources: &Sources, text: &str) -> Result<NewEvent, String> {
    let line: Line =
        serde_json::from_str(text).map_err(|e| format!("not an exported event: {e}"))?;
    let source = Source::parse(&line.source)
        .ok_or_else(|| format!("source {:?} is not a source name", line.source))?;
    let event_id = EventId::parse(&line.event_id, "event_id").map_err(|e| e.to_string())?;
    let Value::Object(body) = &line.payload else {
        return Err("the payload was pruned or is not a JSON object".into());
    };
    let preset = sources.settings(&source).preset;
    let headers = headers(&preset, &line);
    let raw = serde_json::to_vec(&line.payload).map_err(|e| e.to_string())?;
    let mut event = preset
        .prepare(&source, &headers, &raw, body)
        .map_err(|e| e.to_string())?;
    event.event_id = event_id;
    event.event_type = line.event_type;
    event.check_storable().map_err(|e| e.to_string())?;
    Ok(event)
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
