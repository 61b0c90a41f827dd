//! `generic`: for a provider with no preset. The operator names the signature header, its
//! encoding and optional prefix (HMAC-SHA256 of the raw body, keyed with the secret's
//! UTF-8 bytes), and where the event id lives: a header or a JSON pointer into the body.
//! Without an id location the Standard Webhooks chain applies.

use serde::Deserialize;
use serde_json::{Map, Value};
use warp::http::HeaderMap;

use super::{header_id, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::EventId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Hex,
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdLocation {
    Header(String),
    /// RFC 6901, e.g. `/data/id`.
    Pointer(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericScheme {
    pub signature_header: String,
    pub encoding: Encoding,
    pub prefix: Option<String>,
    pub id: Option<IdLocation>,
}

impl GenericScheme {
    pub(super) fn event_id(
        &self,
        headers: &HeaderMap,
        body: &Map<String, Value>,
    ) -> Result<EventId, PayloadError> {
        match &self.id {
            None => super::standard::event_id(headers, body),
            Some(IdLocation::Header(name)) => header_id(headers, name)
                .unwrap_or_else(|| Err(missing_id(name, &format!("header {name}")))),
            Some(IdLocation::Pointer(pointer)) => {
                let body = Value::Object(body.clone());
                match body.pointer(pointer).filter(|v| !v.is_null()) {
                    Some(value) => EventId::from_json(value, pointer),
                    None => Err(missing_id(pointer, &format!("body field {pointer}"))),
                }
            }
        }
    }

    pub(super) fn verify(
        &self,
        secrets: &[String],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        let name = self.signature_header.as_str();
        let value = required_header(headers, name)?;
        let encoded = match &self.prefix {
            Some(prefix) => value
                .strip_prefix(prefix.as_str())
                .ok_or_else(|| SignatureError::BadFormat(name.to_owned()))?,
            None => value,
        };
        let decoded = match self.encoding {
            Encoding::Hex => hex::decode(encoded).ok(),
            Encoding::Base64 => super::decode_base64(encoded),
        };
        let candidate = super::decode_signature(decoded, name)?;
        super::check(&super::utf8_keys(secrets), &[body], &[candidate])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn woocommerce_as_a_generic_scheme() {
        // WooCommerce signs like Refersion: base64 HMAC of the body, in its own header.
        let scheme = GenericScheme {
            signature_header: "X-WC-Webhook-Signature".into(),
            encoding: Encoding::Base64,
            prefix: None,
            id: Some(IdLocation::Pointer("/id".into())),
        };
        let body = br#"{"id":727,"status":"processing","currency":"USD","total":"59.00"}"#;
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-WC-Webhook-Signature",
            "bpl/Rx04xbBHa8P7ABS9H06BXlzJ+oNi6fnyGAM1teY="
                .parse()
                .unwrap(),
        );
        assert_eq!(
            scheme.verify(&["wc_secret_example".into()], &headers, body),
            Ok(())
        );
        assert_eq!(
            scheme.verify(&["other".into()], &headers, body),
            Err(SignatureError::NoMatch)
        );
        let parsed = crate::json::parse_object(body).unwrap();
        assert_eq!(scheme.event_id(&headers, &parsed).unwrap().as_str(), "727");
    }

    #[test]
    fn hex_with_prefix_and_header_id() {
        let scheme = GenericScheme {
            signature_header: "X-Signature".into(),
            encoding: Encoding::Hex,
            prefix: Some("sha256=".into()),
            id: Some(IdLocation::Header("X-Event".into())),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-Signature",
            "sha256=ff1745679fe88a61ac03ccf182798a796df6587e0c9853efa14da252309ee364"
                .parse()
                .unwrap(),
        );
        headers.insert("X-Event", "e-1".parse().unwrap());
        let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        assert_eq!(scheme.verify(&["s3cr3t".into()], &headers, body), Ok(()));
        let parsed = crate::json::parse_object(body).unwrap();
        assert_eq!(scheme.event_id(&headers, &parsed).unwrap().as_str(), "e-1");
        headers.insert(
            "X-Signature",
            "ff1745679fe88a61ac03ccf182798a796df6587e0c9853efa14da252309ee364"
                .parse()
                .unwrap(),
        );
        assert!(matches!(
            scheme.verify(&["s3cr3t".into()], &headers, body),
            Err(SignatureError::BadFormat(_))
        ));
    }
}
