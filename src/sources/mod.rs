//! Providers: where each one puts its event id and type, which fields define "the same
//! event", and how it signs deliveries. One file per preset; this module picks the
//! preset for a source and turns a raw delivery into a validated [`NewEvent`].
//!
//! Nothing here touches a store or builds an HTTP response.

mod generic;
mod github;
mod hmac;
mod refersion;
mod shopify;
mod standard;
mod stripe;

use base64::Engine;
use serde_json::{Map, Value};
use warp::http::HeaderMap;

use crate::error::{PayloadError, SignatureError};
use crate::json;
use crate::model::{EventId, NewEvent, Source};

pub use generic::{Encoding, GenericScheme, IdLocation};
pub use standard::secret_key as standard_secret_key;

/// A provider's conventions. A source named like a preset uses it; any other name uses
/// `Standard` unless configuration names another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preset {
    Refersion,
    Shopify,
    Stripe,
    Github,
    Standard,
    Generic(GenericScheme),
}

/// Whether a source without a secret takes unsigned deliveries (SPEC §7): accepted on a
/// loopback listener or when the operator allows it, refused otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsigned {
    Accepted,
    Refused,
}

impl Preset {
    /// The names of the built-in presets; a source so named uses that preset.
    pub const BUILT_IN: [&'static str; 5] =
        ["refersion", "shopify", "stripe", "github", "standard"];

    /// The preset a source uses when configuration does not name one.
    pub fn for_source(source: &str) -> Preset {
        Preset::named(source).unwrap_or(Preset::Standard)
    }

    /// A built-in preset by name (`generic` needs settings, so it is not one of these).
    pub fn named(name: &str) -> Option<Preset> {
        Some(match name {
            "refersion" => Preset::Refersion,
            "shopify" => Preset::Shopify,
            "stripe" => Preset::Stripe,
            "github" => Preset::Github,
            "standard" => Preset::Standard,
            _ => return None,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Preset::Refersion => "refersion",
            Preset::Shopify => "shopify",
            Preset::Stripe => "stripe",
            Preset::Github => "github",
            Preset::Standard => "standard",
            Preset::Generic(_) => "generic",
        }
    }

    /// Checks the delivery's signature against every configured secret (any one may
    /// match, so secrets can be rotated). `now` is Unix seconds, for timestamped schemes.
    /// With no secret, `unsigned` decides; nothing else is checked then.
    pub fn verify(
        &self,
        secrets: &[String],
        unsigned: Unsigned,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<(), SignatureError> {
        if secrets.is_empty() {
            return match unsigned {
                Unsigned::Accepted => Ok(()),
                Unsigned::Refused => Err(SignatureError::NoSecretConfigured),
            };
        }
        match self {
            Preset::Refersion => refersion::verify(secrets, headers, body),
            Preset::Shopify => shopify::verify(secrets, headers, body),
            Preset::Stripe => stripe::verify(secrets, headers, body, now),
            Preset::Github => github::verify(secrets, headers, body),
            Preset::Standard => standard::verify(secrets, headers, body, now),
            Preset::Generic(scheme) => scheme.verify(secrets, headers, body),
        }
    }

    /// The delivery's event id, as this preset finds it (SPEC §2). Also used to say which
    /// event a refused delivery was, when the id itself was readable.
    pub fn event_id(
        &self,
        headers: &HeaderMap,
        body: &Map<String, Value>,
    ) -> Result<EventId, PayloadError> {
        match self {
            Preset::Refersion => refersion::event_id(headers, body),
            Preset::Shopify => shopify::event_id(headers),
            Preset::Stripe => stripe::event_id(body),
            Preset::Github => github::event_id(headers),
            Preset::Standard => standard::event_id(headers, body),
            Preset::Generic(scheme) => scheme.event_id(headers, body),
        }
    }

    /// Validates a parsed body and builds the event to store: every text it holds can be
    /// stored by every backend.
    pub fn prepare(
        &self,
        source: &Source,
        headers: &HeaderMap,
        raw: &[u8],
        body: &Map<String, Value>,
    ) -> Result<NewEvent, PayloadError> {
        // Every preset but Refersion fingerprints the whole body, less the fields its
        // provider changes between retries of one event.
        let whole_body = |volatile: &[&str]| json::fingerprint_object(body, volatile);
        let event_id = self.event_id(headers, body)?;
        let (event_type, fingerprint) = match self {
            Preset::Refersion => {
                let event_type = refersion::event_type(headers, body);
                let fields = refersion::defining_fields(event_type.as_deref(), body);
                (event_type, json::fingerprint(&fields))
            }
            Preset::Shopify => (header(headers, "X-Shopify-Topic"), whole_body(&[])),
            Preset::Stripe => (
                body_string(body, "type"),
                whole_body(&stripe::VOLATILE_FIELDS),
            ),
            Preset::Github => (header(headers, "X-GitHub-Event"), whole_body(&[])),
            Preset::Standard | Preset::Generic(_) => (standard::event_type(body), whole_body(&[])),
        };
        let conversion = match self {
            Preset::Refersion => refersion::conversion(event_type.as_deref(), body)?,
            _ => None,
        };
        let event = NewEvent {
            source: source.clone(),
            event_id,
            event_type,
            // The body parsed as JSON, and JSON text is UTF-8, so this never fails;
            // a lossy copy would still never be reached.
            payload: String::from_utf8_lossy(raw).into_owned(),
            fingerprint,
            conversion,
            // Settings, not the delivery, decide this; the HTTP layer sets it.
            forward: false,
        };
        event.check_storable()?;
        Ok(event)
    }
}

/// A header's value as text; absent, empty or non-UTF-8 values count as absent.
fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// An event id from a header. A header that is present but empty or not text is an
/// error, not a fall-through, so a broken sender hears about it.
fn header_id(headers: &HeaderMap, name: &str) -> Option<Result<EventId, PayloadError>> {
    let value = headers.get(name)?;
    Some(match value.to_str() {
        Ok(text) => EventId::parse(text, name),
        Err(_) => Err(PayloadError::new(name, "the header is not valid text")),
    })
}

/// An event id from a body field, if the field is present and not null.
fn body_id(body: &Map<String, Value>, field: &str) -> Option<Result<EventId, PayloadError>> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(value) => Some(EventId::from_json(value, field)),
    }
}

fn body_string(body: &Map<String, Value>, field: &str) -> Option<String> {
    body.get(field).and_then(Value::as_str).map(str::to_owned)
}

/// A signature header's text: absent is `MissingHeader`, empty or non-text `BadFormat`.
fn required_header<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h str, SignatureError> {
    let value = headers
        .get(name)
        .ok_or_else(|| SignatureError::MissingHeader(name.to_owned()))?;
    value
        .to_str()
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| SignatureError::BadFormat(name.to_owned()))
}

/// Standard base64, padded as every preset sends it.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A decoded signature must be one SHA-256 digest long.
fn decode_signature(decoded: Option<Vec<u8>>, header: &str) -> Result<Vec<u8>, SignatureError> {
    decoded
        .filter(|bytes| bytes.len() == 32)
        .ok_or_else(|| SignatureError::BadFormat(header.to_owned()))
}

fn utf8_keys(secrets: &[String]) -> Vec<Vec<u8>> {
    secrets.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn check(keys: &[Vec<u8>], signed: &[&[u8]], candidates: &[Vec<u8>]) -> Result<(), SignatureError> {
    if hmac::any_matches(keys, signed, candidates) {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// A signed timestamp must be within `tolerance` seconds of now, in either direction.
fn within_tolerance(now: i64, signed_at: i64, tolerance: i64) -> Result<(), SignatureError> {
    if now.saturating_sub(signed_at).saturating_abs() > tolerance {
        return Err(SignatureError::OutsideTolerance);
    }
    Ok(())
}

/// The scheme Refersion and Shopify share: base64 HMAC-SHA256 of the raw body.
fn verify_base64_body(
    secrets: &[String],
    value: &str,
    header: &str,
    body: &[u8],
) -> Result<(), SignatureError> {
    let candidate = decode_signature(decode_base64(value.trim()), header)?;
    check(&utf8_keys(secrets), &[body], &[candidate])
}

fn missing_id(field: &str, looked_for: &str) -> PayloadError {
    PayloadError::new(field, format!("no event id: expected {looked_for}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn prepare(
        source: &str,
        pairs: &[(&'static str, &str)],
        body: &str,
    ) -> Result<NewEvent, PayloadError> {
        let body_map = json::parse_object(body.as_bytes()).unwrap();
        Preset::for_source(source).prepare(
            &Source::parse(source).unwrap(),
            &headers(pairs),
            body.as_bytes(),
            &body_map,
        )
    }

    #[test]
    fn refersion_takes_event_id_or_topic_and_conversion_id() {
        let seeded = prepare(
            "refersion",
            &[],
            r#"{"event_id":"ref_1","event_type":"click"}"#,
        )
        .unwrap();
        assert_eq!(seeded.event_id.as_str(), "ref_1");
        assert_eq!(seeded.event_type.as_deref(), Some("click"));

        let real = prepare(
            "refersion",
            &[("Refersion-Topic", "APPROVED_CONVERSION")],
            r#"{"id":987654321,"total":"59.00"}"#,
        )
        .unwrap();
        assert_eq!(real.event_id.as_str(), "APPROVED_CONVERSION:987654321");
        assert_eq!(real.event_type.as_deref(), Some("APPROVED_CONVERSION"));
        assert!(real.conversion.is_none());

        let err = prepare("refersion", &[], r#"{"id":1}"#).unwrap_err();
        assert_eq!(err.field, "event_id");
    }

    #[test]
    fn shopify_prefers_event_id_then_webhook_id() {
        let both = prepare(
            "shopify",
            &[
                ("X-Shopify-Event-Id", "ev-1"),
                ("X-Shopify-Webhook-Id", "wh-1"),
                ("X-Shopify-Topic", "orders/create"),
            ],
            "{}",
        )
        .unwrap();
        assert_eq!(both.event_id.as_str(), "ev-1");
        assert_eq!(both.event_type.as_deref(), Some("orders/create"));
        let webhook_only = prepare("shopify", &[("X-Shopify-Webhook-Id", "wh-1")], "{}").unwrap();
        assert_eq!(webhook_only.event_id.as_str(), "wh-1");
        assert!(prepare("shopify", &[], "{}").is_err());
    }

    #[test]
    fn stripe_and_github_ids() {
        let stripe = prepare("stripe", &[], r#"{"id":"evt_1","type":"charge.succeeded"}"#).unwrap();
        assert_eq!(stripe.event_id.as_str(), "evt_1");
        assert_eq!(stripe.event_type.as_deref(), Some("charge.succeeded"));
        let github = prepare(
            "github",
            &[
                ("X-GitHub-Delivery", "72d3162e"),
                ("X-GitHub-Event", "push"),
            ],
            "{}",
        )
        .unwrap();
        assert_eq!(github.event_id.as_str(), "72d3162e");
        assert_eq!(github.event_type.as_deref(), Some("push"));
    }

    #[test]
    fn other_sources_use_the_standard_chain_in_order() {
        let all = [("webhook-id", "wh"), ("Idempotency-Key", "ik")];
        let body = r#"{"event_id":"ev","id":7,"type":"t"}"#;
        assert_eq!(prepare("acme", &all, body).unwrap().event_id.as_str(), "wh");
        assert_eq!(
            prepare("acme", &all[1..], body).unwrap().event_id.as_str(),
            "ik"
        );
        assert_eq!(prepare("acme", &[], body).unwrap().event_id.as_str(), "ev");
        assert_eq!(
            prepare("acme", &[], r#"{"id":7}"#)
                .unwrap()
                .event_id
                .as_str(),
            "7"
        );
        assert_eq!(
            prepare("acme", &[], body).unwrap().event_type.as_deref(),
            Some("t")
        );
        assert_eq!(
            prepare("acme", &[], r#"{"id":7}"#).unwrap().event_type,
            None
        );
        assert!(prepare("acme", &[], r#"{"id":1.5}"#).is_err());
        assert!(prepare("acme", &[], r#"{"other":1}"#).is_err());
    }

    #[test]
    fn stripe_fingerprint_ignores_fields_stripe_changes_between_retries() {
        let first = prepare(
            "stripe",
            &[],
            r#"{"id":"evt_1","pending_webhooks":2,"request":{"id":"req_1"},"data":{"a":1}}"#,
        )
        .unwrap();
        let retry = prepare(
            "stripe",
            &[],
            r#"{"id":"evt_1","pending_webhooks":1,"request":{"id":null},"data":{"a":1}}"#,
        )
        .unwrap();
        let changed = prepare(
            "stripe",
            &[],
            r#"{"id":"evt_1","pending_webhooks":1,"data":{"a":2}}"#,
        )
        .unwrap();
        assert_eq!(first.fingerprint, retry.fingerprint);
        assert_ne!(first.fingerprint, changed.fingerprint);
    }
}
