//! One event with everything the admin side shows about it: the list item (counts,
//! forwarding state), its payload and fingerprint, its conflicts and its conversion.
//! Read by the admin API, the console and `hooklatch events show` alike
//! ([`crate::store::AdminReads::event_detail`]).

use serde::Serialize;
use serde_json::Value;

use super::{ConversionItem, EventItem, payload_value};
use crate::model::StoredConflict;

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
