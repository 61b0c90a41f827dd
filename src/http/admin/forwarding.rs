//! Forwarding per source (SPEC §6.1), for the API and the console alike:
//! `GET /admin/api/forwarding` lists each source's destination, state and counts;
//! `POST /admin/api/forwarding/{source}/pause|resume` changes its state for every
//! instance on the store (and alerts once when it did change); `POST
//! /admin/api/forwarding/{source}/replay` with `{"since","until"}` queues a window of
//! its events again.

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::destination;
use crate::http::app::App;
use crate::http::error::ApiError;
use crate::model::Source;
use crate::read::{InvalidFilter, Timestamp};

/// One row of `GET /admin/api/forwarding`.
#[derive(Debug, Clone, Serialize)]
pub struct ForwardingItem {
    pub source: String,
    /// `forward_to`'s scheme, host and port; `null` when the source no longer forwards.
    pub destination: Option<String>,
    pub state: &'static str,
    pub consecutive_failures: i64,
    pub paused_at: Option<String>,
    pub pending: i64,
    pub failed: i64,
}

/// Every source the configuration forwards or the store holds forwarding for, by name.
pub async fn list(app: &App) -> Result<Vec<ForwardingItem>, ApiError> {
    let stored = app.store_call(|store| store.forwarding_sources()).await?;
    let mut items: Vec<ForwardingItem> = stored
        .into_iter()
        .map(|s| ForwardingItem {
            destination: forward_destination(app, &s.source),
            state: s.state(),
            source: s.source,
            consecutive_failures: s.consecutive_failures,
            paused_at: s.paused_at,
            pending: s.pending,
            failed: s.failed,
        })
        .collect();
    for name in app.sources.forwarding_names() {
        if !items.iter().any(|item| item.source == name) {
            items.push(ForwardingItem {
                destination: forward_destination(app, &name),
                source: name,
                state: "active",
                consecutive_failures: 0,
                paused_at: None,
                pending: 0,
                failed: 0,
            });
        }
    }
    items.sort_by(|a, b| a.source.cmp(&b.source));
    Ok(items)
}

fn forward_destination(app: &App, source: &str) -> Option<String> {
    let source = Source::parse(source)?;
    app.sources.forward_to(&source).map(destination)
}

/// A source named in a path: 404 when it cannot be a source at all.
pub fn source_in_path(name: &str) -> Result<Source, ApiError> {
    Source::parse(name).ok_or(ApiError::NotFound)
}

/// Pauses or resumes `source`; alerts when its state changed. Answers its new state and
/// whether this call changed it; 409 `not_forwarding` when pausing a source without
/// `forward_to`.
pub async fn set_paused(app: &App, source: &Source, paused: bool) -> Result<Value, ApiError> {
    // Resuming stays possible for a source whose forward_to was removed meanwhile.
    if paused && app.sources.forward_to(source).is_none() {
        return Err(ApiError::NotForwarding {
            name: source.to_string(),
        });
    }
    let name = source.clone();
    let changed = app
        .store_call(move |store| store.set_forwarding_paused(&name, paused))
        .await?;
    if let Some(change) = &changed {
        if paused {
            tracing::warn!(source = %source, "forwarding paused by the operator");
            app.alerts.paused(change);
        } else {
            tracing::info!(source = %source, "forwarding resumed by the operator");
            app.alerts.resumed(source.as_str());
            app.forward_wake.notify_one();
        }
    }
    Ok(json!({
        "source": source,
        "state": if paused { "paused" } else { "active" },
        "changed": changed.is_some(),
    }))
}

/// `{"since","until"}` from a JSON body or a console form (`until` optional).
pub fn replay_window(
    since: Option<&str>,
    until: Option<&str>,
) -> Result<(Timestamp, Option<Timestamp>), ApiError> {
    let since = since
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| InvalidFilter::new("since", "is required: an RFC 3339 time"))?;
    let since = Timestamp::parse(since.trim(), "since")?;
    let until = until
        .filter(|s| !s.trim().is_empty())
        .map(|u| Timestamp::parse(u.trim(), "until"))
        .transpose()?;
    if let Some(until) = &until
        && until.as_str() <= since.as_str()
    {
        return Err(InvalidFilter::new("until", "must be later than since").into());
    }
    Ok((since, until))
}

/// The JSON body of the replay endpoint.
pub fn replay_body(body: &[u8]) -> Result<(Timestamp, Option<Timestamp>), ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| {
        InvalidFilter::new(
            "body",
            r#"must be a JSON object such as {"since":"2026-11-30T14:00:00Z"}"#,
        )
    })?;
    let field = |name: &str| -> Result<Option<String>, ApiError> {
        match value.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(InvalidFilter::new(name, "must be an RFC 3339 time as a string").into()),
        }
    };
    if !value.is_object() {
        return Err(InvalidFilter::new("body", "must be a JSON object").into());
    }
    let (since, until) = (field("since")?, field("until")?);
    replay_window(since.as_deref(), until.as_deref())
}

/// Queues every event of `source` first seen in the window again; answers how many.
pub async fn replay(
    app: &App,
    source: &Source,
    since: Timestamp,
    until: Option<Timestamp>,
) -> Result<u64, ApiError> {
    if app.sources.forward_to(source).is_none() {
        return Err(ApiError::NotForwarding {
            name: source.to_string(),
        });
    }
    let name = source.clone();
    let queued = app
        .store_call(move |store| store.replay_forwards(&name, &since, until.as_ref()))
        .await?;
    app.forward_wake.notify_one();
    tracing::info!(source = %source, queued, "forwards replayed by the operator");
    Ok(queued)
}
