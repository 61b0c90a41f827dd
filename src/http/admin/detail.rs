//! One event with everything the admin side shows about it: the list item (counts,
//! forwarding state), its payload and fingerprint, its conflicts and its conversion.

use serde::Serialize;
use serde_json::Value;

use crate::http::app::App;
use crate::http::error::ApiError;
use crate::model::{EventId, Source, StoredConflict};
use crate::read::{ConversionItem, EventFilter, EventItem, payload_value};
use crate::store::{Store, StoreError};

pub struct EventDetail {
    pub item: EventItem,
    pub payload: Option<String>,
    pub fingerprint: String,
    pub conflicts: Vec<StoredConflict>,
    pub conversion: Option<ConversionItem>,
}

#[derive(Serialize)]
pub struct ConflictJson {
    pub received_at: String,
    pub fingerprint: String,
    pub payload: Value,
}

#[derive(Serialize)]
pub struct DetailJson<'a> {
    #[serde(flatten)]
    pub item: &'a EventItem,
    pub payload: Value,
    pub fingerprint: &'a str,
    pub conflicts: Vec<ConflictJson>,
    pub conversion: Option<&'a ConversionItem>,
}

impl EventDetail {
    pub fn json(&self) -> DetailJson<'_> {
        DetailJson {
            item: &self.item,
            payload: payload_value(self.payload.as_deref()),
            fingerprint: &self.fingerprint,
            conflicts: self
                .conflicts
                .iter()
                .map(|c| ConflictJson {
                    received_at: c.received_at.clone(),
                    fingerprint: c.fingerprint.clone(),
                    payload: payload_value(c.payload.as_deref()),
                })
                .collect(),
            conversion: self.conversion.as_ref(),
        }
    }
}

/// `None` when no such event exists, or when the names cannot be a source or an event
/// id at all (nothing could have been stored under them).
pub fn fetch(
    store: &dyn Store,
    source: &str,
    event_id: &str,
) -> Result<Option<EventDetail>, StoreError> {
    let (Some(source), Ok(event_id)) =
        (Source::parse(source), EventId::parse(event_id, "event_id"))
    else {
        return Ok(None);
    };
    let Some(event) = store.event(&source, &event_id)? else {
        return Ok(None);
    };
    let filter = EventFilter {
        source: Some(source.clone()),
        event_id: Some(event_id.as_str().to_owned()),
        ..EventFilter::default()
    };
    let Some(item) = store.list_events(&filter, None, 1)?.into_iter().next() else {
        return Ok(None);
    };
    let conflicts = store.conflicts(&source, &event_id)?;
    let conversion = match event.conversion_id {
        Some(id) => store.conversion_by_id(id)?,
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

/// [`fetch`] from a request handler.
pub async fn load(
    app: &App,
    source: &str,
    event_id: &str,
) -> Result<Option<EventDetail>, ApiError> {
    let (source, event_id) = (source.to_owned(), event_id.to_owned());
    app.store_call(move |store| fetch(store, &source, &event_id))
        .await
        .map_err(ApiError::from)
}
