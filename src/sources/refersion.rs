//! Refersion: affiliate conversions. Real deliveries carry no event id, only the
//! conversion `id` once per topic, so the id falls back to `Refersion-Topic:id`.
//! A `sale` event becomes a conversion in the same transaction as its event.

use serde_json::{Map, Value};
use warp::http::HeaderMap;

use super::{body_id, body_string, header, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::{Amount, EventId, NewConversion, id_text};

const TOPIC: &str = "Refersion-Topic";
const SIGNATURE: &str = "Refersion-Signature";

/// The fields whose values define a Refersion event; anything else may change between
/// retries without making it a different event.
const DEFINING_FIELDS: [&str; 6] = [
    "event_type",
    "order_id",
    "commission_amount",
    "sale_amount",
    "currency",
    "tracking_id",
];

pub(super) fn event_id(
    headers: &HeaderMap,
    body: &Map<String, Value>,
) -> Result<EventId, PayloadError> {
    if let Some(id) = body_id(body, "event_id") {
        return id;
    }
    let looked_for = "body event_id, or header Refersion-Topic with body id";
    let (Some(topic), Some(id)) = (
        header(headers, TOPIC),
        body.get("id").filter(|v| !v.is_null()),
    ) else {
        return Err(missing_id("event_id", looked_for));
    };
    let id =
        id_text(id).ok_or_else(|| PayloadError::new("id", "must be a string or an integer"))?;
    EventId::parse(&format!("{topic}:{id}"), "id")
}

pub(super) fn event_type(headers: &HeaderMap, body: &Map<String, Value>) -> Option<String> {
    body_string(body, "event_type").or_else(|| header(headers, TOPIC))
}

/// The defining fields, each reduced to what it means: amounts by decimal value (so
/// `"15"`, `15` and `15.00` agree), the currency upper-cased, an integer order id as text.
pub(super) fn defining_fields(body: &Map<String, Value>) -> Value {
    let mut fields = Map::new();
    for name in DEFINING_FIELDS {
        let Some(value) = body.get(name) else {
            continue;
        };
        let meaning = match (name, value) {
            ("commission_amount" | "sale_amount", v) => match Amount::from_json(v, name) {
                Ok(amount) => amount_value(amount),
                Err(_) => v.clone(),
            },
            ("currency", Value::String(s)) => Value::String(s.to_ascii_uppercase()),
            ("order_id", v) => id_text(v).map(Value::String).unwrap_or_else(|| v.clone()),
            (_, v) => v.clone(),
        };
        fields.insert(name.to_owned(), meaning);
    }
    Value::Object(fields)
}

fn amount_value(amount: Amount) -> Value {
    // Decimal text is valid JSON number syntax; the fingerprint canonicalises its value.
    serde_json::from_str(&amount.to_string()).unwrap_or(Value::Null)
}

/// The conversion of a `sale` event; `None` for any other event type.
pub(super) fn conversion(
    event_type: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Option<NewConversion>, PayloadError> {
    if event_type != Some("sale") {
        return Ok(None);
    }
    let field = |name: &str| body.get(name).unwrap_or(&Value::Null);

    let order_id = match field("order_id") {
        Value::Null => return Err(PayloadError::new("order_id", "is required for a sale")),
        v => id_text(v)
            .ok_or_else(|| PayloadError::new("order_id", "must be a string or an integer"))?,
    };
    if order_id.is_empty() || order_id.len() > 255 {
        return Err(PayloadError::new("order_id", "must be 1-255 bytes"));
    }
    let commission_amount = Amount::from_json(field("commission_amount"), "commission_amount")?;
    let sale_amount = Amount::from_json(field("sale_amount"), "sale_amount")?;
    let currency = match field("currency") {
        Value::Null => None,
        Value::String(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Some(s.to_ascii_uppercase())
        }
        _ => {
            return Err(PayloadError::new(
                "currency",
                "must be a 3-letter currency code",
            ));
        }
    };
    let tracking_id = match field("tracking_id") {
        Value::Null => None,
        Value::String(s) if s.len() <= 255 => Some(s.clone()),
        Value::String(_) => {
            return Err(PayloadError::new(
                "tracking_id",
                "must be at most 255 bytes",
            ));
        }
        _ => return Err(PayloadError::new("tracking_id", "must be a string")),
    };
    Ok(Some(NewConversion {
        order_id,
        commission_amount,
        sale_amount,
        currency,
        tracking_id,
    }))
}

/// `Refersion-Signature`: standard base64 of HMAC-SHA256(secret, raw body).
pub(super) fn verify(
    secrets: &[String],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), SignatureError> {
    super::verify_base64_body(
        secrets,
        required_header(headers, SIGNATURE)?,
        SIGNATURE,
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse_object;

    fn sale(body: &str) -> Result<Option<NewConversion>, PayloadError> {
        conversion(Some("sale"), &parse_object(body.as_bytes()).unwrap())
    }

    const SEED: &str = r#"{"event_type":"sale","event_id":"ref_evt_123456","order_id":"ORDER_TEST_001","commission_amount":15.00,"sale_amount":75.00,"tracking_id":"YOyqC7"}"#;

    #[test]
    fn a_sale_keeps_exact_amounts() {
        let c = sale(SEED).unwrap().unwrap();
        assert_eq!(c.order_id, "ORDER_TEST_001");
        assert_eq!(c.commission_amount.to_string(), "15.00");
        assert_eq!(c.sale_amount.to_string(), "75.00");
        assert_eq!(c.tracking_id.as_deref(), Some("YOyqC7"));
        assert_eq!(c.currency, None);

        let precise = sale(r#"{"order_id":42,"commission_amount":"0.123456","sale_amount":"12345678901234567.5","currency":"eur"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(precise.order_id, "42");
        assert_eq!(precise.commission_amount.to_string(), "0.123456");
        assert_eq!(precise.sale_amount.to_string(), "12345678901234567.5");
        assert_eq!(precise.currency.as_deref(), Some("EUR"));
    }

    #[test]
    fn invalid_sale_fields_name_the_field() {
        let cases = [
            (r#"{"commission_amount":1,"sale_amount":1}"#, "order_id"),
            (
                r#"{"order_id":"","commission_amount":1,"sale_amount":1}"#,
                "order_id",
            ),
            (
                r#"{"order_id":1.5,"commission_amount":1,"sale_amount":1}"#,
                "order_id",
            ),
            (r#"{"order_id":"o","sale_amount":1}"#, "commission_amount"),
            (
                r#"{"order_id":"o","commission_amount":-1,"sale_amount":1}"#,
                "commission_amount",
            ),
            (
                r#"{"order_id":"o","commission_amount":"abc","sale_amount":1}"#,
                "commission_amount",
            ),
            (
                r#"{"order_id":"o","commission_amount":1,"sale_amount":0.1234567}"#,
                "sale_amount",
            ),
            (
                r#"{"order_id":"o","commission_amount":1,"sale_amount":true}"#,
                "sale_amount",
            ),
            (
                r#"{"order_id":"o","commission_amount":1,"sale_amount":"NaN"}"#,
                "sale_amount",
            ),
            (
                r#"{"order_id":"o","commission_amount":1,"sale_amount":1e400}"#,
                "sale_amount",
            ),
            (
                r#"{"order_id":"o","commission_amount":1,"sale_amount":1,"currency":"US"}"#,
                "currency",
            ),
            (
                r#"{"order_id":"o","commission_amount":1,"sale_amount":1,"tracking_id":5}"#,
                "tracking_id",
            ),
        ];
        for (body, field) in cases {
            assert_eq!(sale(body).unwrap_err().field, field, "{body}");
        }
        let long = format!(
            r#"{{"order_id":"{}","commission_amount":1,"sale_amount":1}}"#,
            "x".repeat(256)
        );
        assert_eq!(sale(&long).unwrap_err().field, "order_id");
    }

    #[test]
    fn only_sales_convert() {
        let body = parse_object(SEED.as_bytes()).unwrap();
        assert!(conversion(Some("click"), &body).unwrap().is_none());
        assert!(conversion(None, &body).unwrap().is_none());
    }

    #[test]
    fn fingerprint_compares_amounts_by_value_and_ignores_other_fields() {
        let a = defining_fields(&parse_object(SEED.as_bytes()).unwrap());
        let b = defining_fields(
            &parse_object(br#"{"tracking_id":"YOyqC7","sale_amount":"75","commission_amount":"15.0","order_id":"ORDER_TEST_001","event_id":"ref_evt_123456","event_type":"sale","note":"retry"}"#).unwrap(),
        );
        assert_eq!(crate::json::fingerprint(&a), crate::json::fingerprint(&b));
        let c = defining_fields(
            &parse_object(br#"{"event_type":"sale","order_id":"ORDER_TEST_001","commission_amount":16,"sale_amount":75,"tracking_id":"YOyqC7"}"#).unwrap(),
        );
        assert_ne!(crate::json::fingerprint(&a), crate::json::fingerprint(&c));
    }

    #[test]
    fn signature_vector_from_providers_md() {
        let body = br#"{"id":987654321,"created":"2020-02-14 18:48:42","status":"PENDING","denied_reason_code":null,"is_recurring":false,"total_items":"1","total":"59.00","commission_total":"5.90","currency":"USD","order_id":"1001","affiliate":{"id":123,"code":"a3y7"}}"#;
        assert_eq!(body.len(), 246);
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE,
            "QSdFfKQks48MF36vlZjqqhkd9S5CK/9tOHKMG00fHaE="
                .parse()
                .unwrap(),
        );
        let secret = vec!["rfsn_example_signing_secret_0123456789".to_owned()];
        assert_eq!(verify(&secret, &headers, body), Ok(()));
        assert_eq!(
            verify(&secret, &headers, &body[..245]),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            verify(&["wrong".to_owned()], &headers, body),
            Err(SignatureError::NoMatch)
        );
        let rotated = vec!["old".to_owned(), secret[0].clone()];
        assert_eq!(verify(&rotated, &headers, body), Ok(()));
        assert!(matches!(
            verify(&secret, &HeaderMap::new(), body),
            Err(SignatureError::MissingHeader(_))
        ));
    }
}
