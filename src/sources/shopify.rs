//! Shopify: the id is `X-Shopify-Event-Id` (one per event, shared by every subscription
//! that receives it), else `X-Shopify-Webhook-Id` (one per delivery chain). Shopify's own
//! pages disagree on which to use; the event id is the stronger key when present.

use warp::http::HeaderMap;

use super::{header_id, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::EventId;

const SIGNATURE: &str = "X-Shopify-Hmac-Sha256";
/// Shopify's newer "Events" deliveries sign under the unprefixed name.
const SIGNATURE_UNPREFIXED: &str = "shopify-hmac-sha256";

pub(super) fn event_id(headers: &HeaderMap) -> Result<EventId, PayloadError> {
    header_id(headers, "X-Shopify-Event-Id")
        .or_else(|| header_id(headers, "X-Shopify-Webhook-Id"))
        .unwrap_or_else(|| {
            Err(missing_id(
                "X-Shopify-Event-Id",
                "header X-Shopify-Event-Id or X-Shopify-Webhook-Id",
            ))
        })
}

/// `X-Shopify-Hmac-Sha256`: standard base64 of HMAC-SHA256(secret, raw body).
pub(super) fn verify(
    secrets: &[String],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    let (name, value) = match required_header(headers, SIGNATURE) {
        Err(SignatureError::MissingHeader(_)) if headers.contains_key(SIGNATURE_UNPREFIXED) => (
            SIGNATURE_UNPREFIXED,
            required_header(headers, SIGNATURE_UNPREFIXED)?,
        ),
        other => (SIGNATURE, other?),
    };
    super::verify_base64_body(secrets, value, name, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE, value.parse().unwrap());
        headers
    }

    #[test]
    fn official_and_own_vectors() {
        let official = signed("B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g=");
        assert_eq!(
            verify(&["test_secret_key".into()], &official, br#"{"foo": "bar"}"#),
            Ok(())
        );
        assert_eq!(
            verify(&["test_secret_key".into()], &official, br#"{"foo":"bar"}"#),
            Err(SignatureError::NoMatch)
        );
        let own = signed("wpGsaYblzu4U91tjT1DDRfYP919oeQOci2Ao18LDGiM=");
        let body = br#"{"id":820982911946154508,"email":"jon@example.com","total_price":"59.00","currency":"USD"}"#;
        assert_eq!(verify(&["hush".into()], &own, body), Ok(()));
        assert_eq!(verify(&["old".into(), "hush".into()], &own, body), Ok(()));
        assert_eq!(
            verify(&["HUSH".into()], &own, body),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn malformed_headers() {
        let body = br#"{"foo": "bar"}"#;
        let secrets = ["test_secret_key".to_owned()];
        assert!(matches!(
            verify(&secrets, &HeaderMap::new(), body),
            Err(SignatureError::MissingHeader(_))
        ));
        for bad in ["", "not base64!", "c2hvcnQ=", &"A".repeat(8192)] {
            assert!(
                matches!(
                    verify(&secrets, &signed(bad), body),
                    Err(SignatureError::BadFormat(_))
                ),
                "{bad:.20}"
            );
        }
        let mut unprefixed = HeaderMap::new();
        unprefixed.insert(
            SIGNATURE_UNPREFIXED,
            "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="
                .parse()
                .unwrap(),
        );
        assert_eq!(verify(&secrets, &unprefixed, body), Ok(()));
    }
}
