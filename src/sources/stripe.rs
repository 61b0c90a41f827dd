//! Stripe: the id is the event object's `id` (`evt_…`). `Stripe-Signature` is
//! `t=<unix>,v1=<hex>[,v1=<hex>…]` over `"{t}.{raw body}"`, keyed with the `whsec_…`
//! string itself. Only `v1` counts (test mode adds a fake `v0`), any `v1` may match
//! (secret rolling), and `t` must be within five minutes of now.

use serde_json::{Map, Value};
use warp::http::HeaderMap;

use super::{body_id, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::EventId;

const SIGNATURE: &str = "Stripe-Signature";
/// Seconds, as in Stripe's SDKs (`DEFAULT_TOLERANCE = 300`).
pub const TOLERANCE_SECS: i64 = 300;

/// Fields Stripe changes between retries of one event.
pub(super) const VOLATILE_FIELDS: [&str; 2] = ["pending_webhooks", "request"];

pub(super) fn event_id(body: &Map<String, Value>) -> Result<EventId, PayloadError> {
    body_id(body, "id").unwrap_or_else(|| Err(missing_id("id", "body id (evt_…)")))
}

pub(super) fn verify(
    secrets: &[String],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let value = required_header(headers, SIGNATURE)?;
    let bad_format = || SignatureError::BadFormat(SIGNATURE.to_owned());
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", sig)) => candidates.push(
                hex::decode(sig)
                    .ok()
                    .filter(|s| s.len() == 32)
                    .ok_or_else(bad_format)?,
            ),
            Some(_) => {}
            None => return Err(bad_format()),
        }
    }
    let timestamp = timestamp.ok_or_else(bad_format)?;
    let seconds: i64 = timestamp.parse().map_err(|_| bad_format())?;
    if candidates.is_empty() {
        return Err(bad_format());
    }
    super::check(
        &super::utf8_keys(secrets),
        &[timestamp.as_bytes(), b".", body],
        &candidates,
    )?;
    // Checked after the signature, so an unsigned probe learns nothing about our clock.
    super::within_tolerance(now, seconds, TOLERANCE_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stripe-dotnet's `event_test_signature.json`: 484 bytes, LF endings, final newline.
    const DOTNET_FIXTURE: &str = "{\n  \"id\": \"evt_123\",\n  \"object\": \"event\",\n  \"account\": \"acct_123\",\n  \"api_version\": \"2017-05-25\",\n  \"created\": 1533204620,\n  \"data\": {\n    \"object\": {\n      \"id\": \"cus_123\",\n      \"object\": \"customer\",\n      \"created\": 123456789,\n      \"email\": \"test@stripe.com\",\n      \"livemode\": false,\n      \"metadata\": {}\n    }\n  },\n  \"livemode\": false,\n  \"pending_webhooks\": 1,\n  \"request\": {\n    \"id\": \"req_123\",\n    \"idempotency_key\": \"idempotency-key-123\"\n  },\n  \"type\": \"customer.created\"\n}\n";

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, value.parse().unwrap());
        headers
    }

    #[test]
    fn official_dotnet_vector_within_and_outside_tolerance() {
        assert_eq!(DOTNET_FIXTURE.len(), 484);
        let headers = signed(
            "t=1533204620,v1=2220f87ef101a04665f11cdf770523143f875572008577fa0f20882ddb9cc3c7,v0=63f3a72374a733066c4be69ed7f8e5ac85c22c9f0a6a612ab9a025a9e4ee7eef",
        );
        let secrets = ["webhook_secret".to_owned()];
        let body = DOTNET_FIXTURE.as_bytes();
        assert_eq!(verify(&secrets, &headers, body, 1533204620 + 100), Ok(()));
        assert_eq!(
            verify(&secrets, &headers, body, 1533204620 + 400),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(&secrets, &headers, &body[..483], 1533204620),
            Err(SignatureError::NoMatch),
            "the trailing newline is part of the signed bytes"
        );
    }

    #[test]
    fn own_vector_rotation_and_tolerance_edges() {
        let body =
            br#"{"id":"evt_test_webhook","object":"event","type":"checkout.session.completed"}"#;
        let t = 1_700_000_000;
        let one = signed(
            "t=1700000000,v1=1fa73ff7286785daa8168695a709e92ce31d02a9202648cb27a1c5f2e233f517",
        );
        let secret = ["whsec_test_secret".to_owned()];
        assert_eq!(verify(&secret, &one, body, t), Ok(()));
        assert_eq!(verify(&secret, &one, body, t + TOLERANCE_SECS), Ok(()));
        assert_eq!(verify(&secret, &one, body, t - TOLERANCE_SECS), Ok(()));
        assert_eq!(
            verify(&secret, &one, body, t + TOLERANCE_SECS + 1),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(&secret, &one, body, t - TOLERANCE_SECS - 1),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(&["whsec_other".into()], &one, body, t),
            Err(SignatureError::NoMatch)
        );

        let rolled = signed(
            "t=1700000000,v1=1fa73ff7286785daa8168695a709e92ce31d02a9202648cb27a1c5f2e233f517,v1=9f86aa3277fd60e085866aaa5183c9e3c1d0d871521c90014f24e1814c80957e",
        );
        assert_eq!(verify(&secret, &rolled, body, t), Ok(()));
        assert_eq!(
            verify(&["whsec_old_secret".into()], &rolled, body, t),
            Ok(())
        );
    }

    #[test]
    fn only_v1_counts_and_malformed_headers_are_refused() {
        let body =
            br#"{"id":"evt_test_webhook","object":"event","type":"checkout.session.completed"}"#;
        let secret = ["whsec_test_secret".to_owned()];
        // A correct signature offered as v0 must not verify (downgrade).
        let v0_only = signed(
            "t=1700000000,v0=1fa73ff7286785daa8168695a709e92ce31d02a9202648cb27a1c5f2e233f517",
        );
        assert!(matches!(
            verify(&secret, &v0_only, body, 1_700_000_000),
            Err(SignatureError::BadFormat(_))
        ));
        for bad in [
            "",
            "garbage",
            "t=abc,v1=00",
            "v1=1fa73ff7286785daa8168695a709e92ce31d02a9202648cb27a1c5f2e233f517",
            "t=1700000000",
            "t=1700000000,v1=xyz",
        ] {
            assert!(
                matches!(
                    verify(&secret, &signed(bad), body, 1_700_000_000),
                    Err(SignatureError::BadFormat(_))
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            verify(&secret, &HeaderMap::new(), body, 0),
            Err(SignatureError::MissingHeader(_))
        ));
    }
}
