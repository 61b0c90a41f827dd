//! What one attempt sends: the stored body untouched and the headers of SPEC §6, signed
//! the Standard Webhooks way, so the app can verify with any of its libraries.

use base64::Engine;
use hmac::{KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::model::outbox::ForwardJob;

/// RFC 3986 unreserved characters stay; everything else in an event id is encoded, so
/// any id (spaces, slashes, non-ASCII) fits a header and decodes back exactly.
const EVENT_ID: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `webhook-id`: stable across attempts, so the app can dedupe on it.
pub fn webhook_id(webhook_event_id: i64) -> String {
    format!("hl_{webhook_event_id}")
}

/// `v1,` + base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"` under the decoded key.
pub fn signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC accepts a key of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Every header of one attempt at unix time `timestamp`.
pub fn headers(job: &ForwardJob, body: &[u8], timestamp: i64, key: Option<&[u8]>) -> HeaderMap {
    let id = webhook_id(job.webhook_event_id);
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("webhook-id", &id);
    put("webhook-timestamp", &timestamp.to_string());
    if let Some(key) = key {
        put("webhook-signature", &signature(key, &id, timestamp, body));
    }
    // Source names are [a-z0-9_-]: always a valid header value.
    put("x-hooklatch-source", &job.source);
    put(
        "x-hooklatch-event-id",
        &utf8_percent_encode(&job.event_id, EVENT_ID).to_string(),
    );
    // Event types are sent as received; one with control characters cannot be a header
    // and is left out rather than altered.
    if let Some(event_type) = &job.event_type {
        put("x-hooklatch-event-type", event_type);
    }
    headers
}

/// The headers of an alert: JSON, its id and time, signed like forwards when a key is set.
pub fn alert_headers(id: &str, body: &[u8], timestamp: i64, key: Option<&[u8]>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let mut put = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    put("webhook-id", id);
    put("webhook-timestamp", &timestamp.to_string());
    if let Some(key) = key {
        put("webhook-signature", &signature(key, id, timestamp, body));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official vector of the Standard Webhooks libraries (providers.md §4.4).
    #[test]
    fn signs_like_the_standard_webhooks_libraries() {
        let key =
            crate::sources::standard_secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            signature(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn headers_name_the_event_and_encode_its_id() {
        let job = ForwardJob {
            webhook_event_id: 42,
            source: "shop".into(),
            event_id: "a b/ü".into(),
            event_type: Some("orders/create".into()),
            payload: Some("{}".into()),
            attempts: 0,
        };
        let headers = headers(&job, b"{}", 1700000000, None);
        let get = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(get("webhook-id"), "hl_42");
        assert_eq!(get("webhook-timestamp"), "1700000000");
        assert_eq!(get("content-type"), "application/json");
        assert_eq!(get("x-hooklatch-source"), "shop");
        assert_eq!(get("x-hooklatch-event-id"), "a%20b%2F%C3%BC");
        assert_eq!(get("x-hooklatch-event-type"), "orders/create");
        assert!(headers.get("webhook-signature").is_none());
    }
}
