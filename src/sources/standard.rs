//! Standard Webhooks (Svix and others), also the convention for any source name that is
//! not a preset. The id is `webhook-id`, else `Idempotency-Key`, else body `event_id`,
//! else body `id`. The signature is `webhook-signature: v1,<base64> …` over
//! `"{webhook-id}.{webhook-timestamp}.{raw body}"`, keyed with the base64-decoded part of
//! a `whsec_…` secret, within five minutes of now either way.

use base64::Engine;
use serde_json::{Map, Value};
use warp::http::HeaderMap;

use super::{body_id, body_string, header_id, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::EventId;

/// Seconds either way, as in every reference library.
pub const TOLERANCE_SECS: i64 = 5 * 60;

pub(super) fn event_id(
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<EventId, PayloadError> {
    header_id(headers, "webhook-id")
        .or_else(|| header_id(headers, "Idempotency-Key"))
        .or_else(|| body_id(body, "event_id"))
        .or_else(|| body_id(body, "id"))
        .unwrap_or_else(|| {
            Err(missing_id(
                "event_id",
                "header webhook-id or Idempotency-Key, or body event_id or id",
            ))
        })
}

pub(super) fn event_type(body: &Map<String, Value>) -> Option<String> {
    body_string(body, "event_type").or_else(|| body_string(body, "type"))
}

/// The HMAC key of a `whsec_…` secret (the prefix is optional; padding may be omitted).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine.decode(encoded).ok().filter(|key| !key.is_empty())
}

pub(super) fn verify(
    secrets: &[String],
    headers: &HeaderMap,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let id = required_header(headers, "webhook-id")?;
    let timestamp = required_header(headers, "webhook-timestamp")?;
    let signatures = required_header(headers, "webhook-signature")?;
    let seconds: i64 = timestamp
        .parse()
        .map_err(|_| SignatureError::BadFormat("webhook-timestamp".to_owned()))?;
    let candidates: Vec<Vec<u8>> = signatures
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(super::decode_base64)
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::BadFormat("webhook-signature".to_owned()));
    }
    // A secret that does not decode was refused at startup; here it can only not match.
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(|s| secret_key(s)).collect();
    super::check(
        &keys,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
        &candidates,
    )?;
    super::within_tolerance(now, seconds, TOLERANCE_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: &str, ts: &str, sig: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", id.parse().unwrap());
        headers.insert("webhook-timestamp", ts.parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        headers
    }

    #[test]
    fn official_vectors() {
        let primary = delivery(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        let body = br#"{"test": 2432232314}"#;
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned();
        assert_eq!(
            verify(std::slice::from_ref(&secret), &primary, body, 1614265330),
            Ok(())
        );
        // The tests also accept the secret without its prefix.
        assert_eq!(
            verify(
                &["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into()],
                &primary,
                body,
                1614265330
            ),
            Ok(())
        );
        let negative = delivery(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=",
        );
        assert_eq!(
            verify(std::slice::from_ref(&secret), &negative, body, 1614265330),
            Err(SignatureError::NoMatch)
        );

        let second = delivery(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        );
        let body2 = br#"{"email":"test@example.com","username":"test_user"}"#;
        let secret2 = ["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD".to_owned()];
        assert_eq!(verify(&secret2, &second, body2, 1649367553), Ok(()));
        let wrong = delivery(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            "1649367553",
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
        );
        assert_eq!(
            verify(&secret2, &wrong, body2, 1649367553),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn multi_signature_headers() {
        let body = br#"{"test": 2432232314}"#;
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()];
        let mixed = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=";
        let ok = delivery("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", mixed);
        assert_eq!(verify(&secret, &ok, body, 1614265330), Ok(()));
        let invalid_only = "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let bad = delivery("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", invalid_only);
        assert_eq!(
            verify(&secret, &bad, body, 1614265330),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn own_vector_and_tolerance_both_ways() {
        let body = br#"{"type":"contact.created","timestamp":"2022-11-03T20:26:10.344522Z","data":{"id":"1f81eb52-5198-4599-803e-771906343485"}}"#;
        let secret = ["whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".to_owned()];
        let headers = delivery(
            "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
            "1674087231",
            "v1,4PMU5Dl90B4kgwxDpwuMZ/cnZ5ztf+Y+kviYQD66rJg=",
        );
        let t = 1_674_087_231;
        for now in [t, t - TOLERANCE_SECS, t + TOLERANCE_SECS] {
            assert_eq!(
                verify(&secret, &headers, body, now),
                Ok(()),
                "now = t{:+}",
                now - t
            );
        }
        for now in [t - TOLERANCE_SECS - 1, t + TOLERANCE_SECS + 1] {
            assert_eq!(
                verify(&secret, &headers, body, now),
                Err(SignatureError::OutsideTolerance)
            );
        }
        let rotated = [
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            secret[0].clone(),
        ];
        assert_eq!(verify(&rotated, &headers, body, t), Ok(()));
    }

    #[test]
    fn malformed_headers() {
        let secret = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()];
        let mut partial = HeaderMap::new();
        partial.insert("webhook-id", "msg".parse().unwrap());
        assert_eq!(
            verify(&secret, &partial, b"{}", 0),
            Err(SignatureError::MissingHeader("webhook-timestamp".into()))
        );
        for (ts, sig) in [
            ("soon", "v1,AAAA"),
            ("1", ""),
            ("1", "v1,***"),
            ("1", "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        ] {
            let headers = delivery("msg", ts, if sig.is_empty() { " " } else { sig });
            assert!(
                matches!(
                    verify(&secret, &headers, b"{}", 1),
                    Err(SignatureError::BadFormat(_))
                ),
                "{ts} {sig}"
            );
        }
    }
}
