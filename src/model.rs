//! Validated domain types: what the HTTP layer hands to a store, and what a store hands
//! back. Everything here is checked at construction, so a store never sees an invalid
//! source name, an empty event id or a negative amount.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;

use crate::error::PayloadError;

pub mod clock;
pub mod outbox;

/// A webhook source: the `{source}` path segment, 1–64 characters of `[a-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Source(String);

impl Source {
    pub const MAX_LEN: usize = 64;

    /// `None` for anything that is not a valid source name (the route answers 404).
    pub fn parse(name: &str) -> Option<Source> {
        let valid = (1..=Self::MAX_LEN).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        valid.then(|| Source(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An external event id: 1–255 bytes, compared exactly (no trimming, no case folding).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    pub const MAX_BYTES: usize = 255;

    pub fn parse(text: &str, field: &str) -> Result<EventId, PayloadError> {
        if text.is_empty() {
            return Err(PayloadError::new(field, "the event id is empty"));
        }
        if text.len() > Self::MAX_BYTES {
            return Err(PayloadError::new(
                field,
                format!("the event id is longer than {} bytes", Self::MAX_BYTES),
            ));
        }
        if text.contains('\0') {
            // PostgreSQL text cannot hold U+0000, and both backends must answer alike.
            return Err(PayloadError::new(
                field,
                "the event id contains a NUL character",
            ));
        }
        Ok(EventId(text.to_owned()))
    }

    /// A JSON string, or a JSON integer kept as its decimal text.
    pub fn from_json(value: &Value, field: &str) -> Result<EventId, PayloadError> {
        match id_text(value) {
            Some(text) => EventId::parse(&text, field),
            None => Err(PayloadError::new(
                field,
                "the event id must be a string or an integer",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The text of an id-like JSON value: a string as is, an integer as its decimal text.
/// Floats, booleans, arrays and objects are not ids.
pub fn id_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => {
            // With arbitrary_precision the number keeps its source text, so an integer of
            // any size stays exact; "1.0" and "1e3" are not integers.
            let text = n.to_string();
            let digits = text.strip_prefix('-').unwrap_or(&text);
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(text)
        }
        _ => None,
    }
}

/// A non-negative money amount with at most six fraction digits, kept as an exact decimal
/// from the request body to the store (`15.00` stays `15.00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Amount(Decimal);

impl Amount {
    pub const MAX_FRACTION_DIGITS: u32 = 6;
    /// SPEC §7. Sums of such amounts stay far inside `Decimal`'s 28 digits (and
    /// PostgreSQL's `numeric`), so both stores sum them exactly and alike.
    pub const MAX_INTEGER_DIGITS: u32 = 18;

    /// Accepts a JSON number or a numeric string in JSON number syntax.
    pub fn from_json(value: &Value, field: &str) -> Result<Amount, PayloadError> {
        let text = match value {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            Value::Null => return Err(PayloadError::new(field, "is required")),
            _ => {
                return Err(PayloadError::new(
                    field,
                    "must be a number or a numeric string",
                ));
            }
        };
        Amount::parse(&text).map_err(|reason| PayloadError::new(field, reason))
    }

    pub fn parse(text: &str) -> Result<Amount, &'static str> {
        if !crate::json::is_json_number(text) {
            return Err("must be a number or a numeric string");
        }
        let parsed = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str(text)
        };
        let mut value = parsed.map_err(|_| "is out of range")?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err("must not be negative");
        }
        value.set_sign_positive(true);
        if value.trunc() >= Decimal::from(10u64.pow(Self::MAX_INTEGER_DIGITS)) {
            return Err("has more than 18 digits before the decimal point");
        }
        if value.scale() > Self::MAX_FRACTION_DIGITS {
            // `1.5000000` has seven fraction digits but only one that matters.
            value = value.normalize();
            if value.scale() > Self::MAX_FRACTION_DIGITS {
                return Err("has more than 6 fraction digits");
            }
        }
        Ok(Amount(value))
    }

    pub fn from_decimal(value: Decimal) -> Amount {
        Amount(value)
    }

    pub fn decimal(&self) -> Decimal {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The conversion a `refersion` delivery creates or moves, in the same transaction as its
/// event. Two kinds (SPEC §2, Conversions):
///
/// - a seed-style sale (`external_conversion_id` is `None`): one conversion per sale
///   event, keyed by the event id;
/// - a real Refersion conversion delivery (`external_conversion_id` is Refersion's `id`):
///   one conversion per `(source, external_conversion_id)`, which later deliveries move
///   along its lifecycle unless they are stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConversion {
    /// Refersion's conversion id as decimal text; `None` for a seed-style sale.
    pub external_conversion_id: Option<String>,
    /// Required for a seed-style sale, optional on a conversion delivery.
    pub order_id: Option<String>,
    pub commission_amount: Amount,
    pub sale_amount: Amount,
    pub currency: Option<String>,
    pub tracking_id: Option<String>,
    /// Upper-cased. Always set on a conversion delivery; optional on a seed-style sale.
    pub status: Option<String>,
    pub affiliate_id: Option<String>,
    pub affiliate_code: Option<String>,
    /// The provider's `updated` (else `created`), as RFC 3339 UTC with microseconds, the
    /// same text [`clock::now_text`] writes, so text order is time order.
    pub source_updated_at: Option<String>,
}

impl NewConversion {
    /// A seed-style sale: no lifecycle fields beyond an optional status.
    pub fn sale(
        order_id: String,
        commission_amount: Amount,
        sale_amount: Amount,
        currency: Option<String>,
        tracking_id: Option<String>,
    ) -> NewConversion {
        NewConversion {
            external_conversion_id: None,
            order_id: Some(order_id),
            commission_amount,
            sale_amount,
            currency,
            tracking_id,
            status: None,
            affiliate_id: None,
            affiliate_code: None,
            source_updated_at: None,
        }
    }
}

/// One delivery, validated and fingerprinted, ready for [`crate::store::Receiving::process`].
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub source: Source,
    pub event_id: EventId,
    pub event_type: Option<String>,
    /// The body exactly as received (valid UTF-8: it parsed as JSON).
    pub payload: String,
    /// Lowercase hex SHA-256 of the canonical form of the fields that define the event.
    pub fingerprint: String,
    pub conversion: Option<NewConversion>,
    /// The source forwards to the merchant's app: a processed event also gets an outbox
    /// entry, in the same transaction (set by the HTTP layer from the source's settings).
    pub forward: bool,
}

impl NewEvent {
    /// Refuses text bound for a column of its own that holds U+0000: PostgreSQL `text`
    /// cannot store it, so SQLite must not either. (The payload is unaffected: a NUL
    /// in JSON is the escape `\u0000`, which is plain text.)
    pub fn check_storable(&self) -> Result<(), PayloadError> {
        let conversion = self.conversion.as_ref();
        let texts = [
            ("event_type", self.event_type.as_deref()),
            ("order_id", conversion.and_then(|c| c.order_id.as_deref())),
            (
                "tracking_id",
                conversion.and_then(|c| c.tracking_id.as_deref()),
            ),
            ("status", conversion.and_then(|c| c.status.as_deref())),
            (
                "id",
                conversion.and_then(|c| c.external_conversion_id.as_deref()),
            ),
            (
                "affiliate.id",
                conversion.and_then(|c| c.affiliate_id.as_deref()),
            ),
            (
                "affiliate.code",
                conversion.and_then(|c| c.affiliate_code.as_deref()),
            ),
        ];
        for (field, text) in texts {
            if text.is_some_and(|t| t.contains('\0')) {
                return Err(PayloadError::new(field, "must not contain a NUL character"));
            }
        }
        Ok(())
    }
}

/// The ids of the original processing of an event, and where its conversion stands now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Receipt {
    pub webhook_event_id: i64,
    pub conversion_id: Option<i64>,
    /// The status on record for the conversion now (after this delivery), if the event
    /// has a conversion; `None` also for a conversion without a status.
    pub conversion_status: Option<String>,
    /// `Processed` only: this delivery created or moved its conversion. False when it
    /// was stale, when the event has no conversion, and on `Duplicate` and `Conflict`.
    pub applied: bool,
}

/// What a store did with a delivery. A duplicate is a normal answer, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// First delivery: the event (and its conversion) were committed durably.
    Processed(Receipt),
    /// Seen before with the same fingerprint; only `delivery_count`/`last_seen_at` moved.
    Duplicate(Receipt),
    /// Seen before with a different fingerprint; the original is untouched and the
    /// delivery was counted, and kept in `webhook_conflicts` while the event has fewer
    /// than [`crate::store::KEPT_CONFLICTS`] kept.
    Conflict(Receipt),
}

impl Outcome {
    pub fn receipt(&self) -> &Receipt {
        match self {
            Outcome::Processed(r) | Outcome::Duplicate(r) | Outcome::Conflict(r) => r,
        }
    }
}

/// An event row as stored, for tests and admin reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub source: String,
    pub external_event_id: String,
    pub event_type: Option<String>,
    pub payload: Option<String>,
    pub fingerprint: String,
    pub conversion_id: Option<i64>,
    pub delivery_count: i64,
    pub conflict_count: i64,
    /// RFC 3339 UTC with microseconds, e.g. `2026-11-28T21:00:00.123456Z`.
    pub first_seen_at: String,
    pub last_seen_at: String,
}

/// A delivery that reused an event id with a different payload, kept for inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredConflict {
    pub id: i64,
    pub webhook_event_id: i64,
    pub fingerprint: String,
    /// `None` once pruned.
    pub payload: Option<String>,
    pub received_at: String,
}
