//! Refersion: affiliate conversions. Real deliveries carry no event id, only the
//! conversion `id` once per topic, so the id falls back to `Refersion-Topic:id`.
//!
//! Two kinds of body make a conversion (SPEC §2, Conversions): a seed-style `sale` event
//! (one conversion per event), and a real conversion delivery, recognised by its body
//! (`id`, `status`, `total`, `commission_total`) because Refersion does not document its
//! topic strings. Every topic of one conversion describes the same conversion, keyed by
//! its `id`; the store decides whether a delivery moves it or is stale.

use serde_json::{Map, Value};
use warp::http::HeaderMap;

use super::{body_id, body_string, header, missing_id, required_header};
use crate::error::{PayloadError, SignatureError};
use crate::model::{Amount, EventId, NewConversion, id_text};

const TOPIC: &str = "Refersion-Topic";
const SIGNATURE: &str = "Refersion-Signature";

/// The fields whose values define a Refersion event; anything else may change between
/// retries without making it a different event.
const SALE_FIELDS: [&str; 6] = [
    "event_type",
    "order_id",
    "commission_amount",
    "sale_amount",
    "currency",
    "tracking_id",
];

/// The fields that define one delivery of a conversion: two deliveries under one topic
/// and id that differ in any of them are a conflict, not a duplicate.
const CONVERSION_FIELDS: [&str; 8] = [
    "id",
    "status",
    "total",
    "commission_total",
    "currency",
    "order_id",
    "updated",
    "created",
];

/// What a body must carry to be a conversion delivery.
const CONVERSION_MARKERS: [&str; 4] = ["id", "status", "total", "commission_total"];

/// Refersion's timestamps: `YYYY-MM-DD HH:MM:SS`, no zone, read as UTC.
const TIMESTAMP: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

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

/// Whether a body is a real conversion delivery: not a seed-style sale, and carrying
/// the conversion object's defining fields.
fn is_conversion_delivery(event_type: Option<&str>, body: &Map<String, Value>) -> bool {
    event_type != Some("sale") && CONVERSION_MARKERS.iter().all(|f| body.contains_key(*f))
}

/// The defining fields, each reduced to what it means: amounts by decimal value (so
/// `"15"`, `15` and `15.00` agree), the currency and status upper-cased, an integer id
/// as text. A conversion delivery is defined by its conversion fields, any other body by
/// the sale fields.
pub(super) fn defining_fields(event_type: Option<&str>, body: &Map<String, Value>) -> Value {
    let names: &[&str] = if is_conversion_delivery(event_type, body) {
        &CONVERSION_FIELDS
    } else {
        &SALE_FIELDS
    };
    let mut fields = Map::new();
    for &name in names {
        let Some(value) = body.get(name) else {
            continue;
        };
        let meaning = match (name, value) {
            ("commission_amount" | "sale_amount" | "total" | "commission_total", v) => {
                match Amount::from_json(v, name) {
                    Ok(amount) => amount_value(amount),
                    Err(_) => v.clone(),
                }
            }
            ("currency" | "status", Value::String(s)) => Value::String(s.to_ascii_uppercase()),
            ("order_id" | "id", v) => id_text(v).map(Value::String).unwrap_or_else(|| v.clone()),
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

/// The conversion a delivery creates or moves: a seed-style `sale` event, or a real
/// conversion delivery; `None` for anything else.
pub(super) fn conversion(
    event_type: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Option<NewConversion>, PayloadError> {
    if event_type == Some("sale") {
        return sale(body).map(Some);
    }
    if is_conversion_delivery(event_type, body) {
        return conversion_delivery(body).map(Some);
    }
    Ok(None)
}

fn field<'b>(body: &'b Map<String, Value>, name: &str) -> &'b Value {
    body.get(name).unwrap_or(&Value::Null)
}

fn sale(body: &Map<String, Value>) -> Result<NewConversion, PayloadError> {
    let order_id = optional_id(field(body, "order_id"), "order_id")?
        .ok_or_else(|| PayloadError::new("order_id", "is required for a sale"))?;
    let commission_amount =
        Amount::from_json(field(body, "commission_amount"), "commission_amount")?;
    let sale_amount = Amount::from_json(field(body, "sale_amount"), "sale_amount")?;
    let currency = currency(body)?;
    let tracking_id = match field(body, "tracking_id") {
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
    // A seed-style sale's status is free text, kept upper-cased; only its size is bounded.
    let status = match field(body, "status") {
        Value::Null => None,
        Value::String(s) if s.len() <= 255 => Some(s.to_ascii_uppercase()),
        Value::String(_) => return Err(PayloadError::new("status", "must be at most 255 bytes")),
        _ => return Err(PayloadError::new("status", "must be a string")),
    };
    Ok(NewConversion {
        status,
        ..NewConversion::sale(
            order_id,
            commission_amount,
            sale_amount,
            currency,
            tracking_id,
        )
    })
}

/// A real conversion delivery (providers.md §1.2), validated field by field.
fn conversion_delivery(body: &Map<String, Value>) -> Result<NewConversion, PayloadError> {
    let external_conversion_id = optional_id(field(body, "id"), "id")?
        .ok_or_else(|| PayloadError::new("id", "is required for a conversion"))?;
    let status = match field(body, "status") {
        Value::String(s) => {
            let upper = s.to_ascii_uppercase();
            let valid = (1..=32).contains(&upper.len())
                && upper.bytes().all(|b| b.is_ascii_uppercase() || b == b'_');
            if !valid {
                return Err(PayloadError::new(
                    "status",
                    "must be 1-32 characters of A-Z and _",
                ));
            }
            upper
        }
        _ => return Err(PayloadError::new("status", "must be a string")),
    };
    let sale_amount = Amount::from_json(field(body, "total"), "total")?;
    let commission_amount = Amount::from_json(field(body, "commission_total"), "commission_total")?;
    let (affiliate_id, affiliate_code) = match field(body, "affiliate") {
        Value::Null => (None, None),
        Value::Object(affiliate) => (
            optional_id(field(affiliate, "id"), "affiliate.id")?,
            match field(affiliate, "code") {
                Value::Null => None,
                Value::String(s) if s.len() <= 255 => Some(s.clone()),
                _ => {
                    return Err(PayloadError::new(
                        "affiliate.code",
                        "must be a string of at most 255 bytes",
                    ));
                }
            },
        ),
        _ => return Err(PayloadError::new("affiliate", "must be an object")),
    };
    let updated = timestamp(body, "updated")?;
    let created = timestamp(body, "created")?;
    Ok(NewConversion {
        external_conversion_id: Some(external_conversion_id),
        order_id: optional_id(field(body, "order_id"), "order_id")?,
        commission_amount,
        sale_amount,
        currency: currency(body)?,
        tracking_id: None,
        status: Some(status),
        affiliate_id,
        affiliate_code,
        source_updated_at: updated.or(created),
    })
}

/// An optional id-like field: a string or an integer, 1-255 bytes as text.
fn optional_id(value: &Value, name: &str) -> Result<Option<String>, PayloadError> {
    if value.is_null() {
        return Ok(None);
    }
    let text =
        id_text(value).ok_or_else(|| PayloadError::new(name, "must be a string or an integer"))?;
    if text.is_empty() || text.len() > 255 {
        return Err(PayloadError::new(name, "must be 1-255 bytes"));
    }
    Ok(Some(text))
}

fn currency(body: &Map<String, Value>) -> Result<Option<String>, PayloadError> {
    match field(body, "currency") {
        Value::Null => Ok(None),
        Value::String(s) if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) => {
            Ok(Some(s.to_ascii_uppercase()))
        }
        _ => Err(PayloadError::new(
            "currency",
            "must be a 3-letter currency code",
        )),
    }
}

/// `YYYY-MM-DD HH:MM:SS` read as UTC, returned as the store's RFC 3339 text.
fn timestamp(body: &Map<String, Value>, name: &str) -> Result<Option<String>, PayloadError> {
    let text = match field(body, name) {
        Value::Null => return Ok(None),
        Value::String(s) => s,
        _ => {
            return Err(PayloadError::new(
                name,
                "must be a YYYY-MM-DD HH:MM:SS string",
            ));
        }
    };
    let parsed = time::PrimitiveDateTime::parse(text, TIMESTAMP)
        .map_err(|_| PayloadError::new(name, "must be YYYY-MM-DD HH:MM:SS (UTC)"))?;
    let utc = parsed.assume_utc();
    // PostgreSQL has no year 0; both stores must answer alike.
    if utc.year() < 1 {
        return Err(PayloadError::new(name, "is out of range"));
    }
    utc.format(crate::model::clock::STORED_TIMESTAMP)
        .map(Some)
        .map_err(|_| PayloadError::new(name, "is out of range"))
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
        assert_eq!(c.order_id.as_deref(), Some("ORDER_TEST_001"));
        assert_eq!(c.status, None);
        assert_eq!(c.external_conversion_id, None);
        assert_eq!(c.commission_amount.to_string(), "15.00");
        assert_eq!(c.sale_amount.to_string(), "75.00");
        assert_eq!(c.tracking_id.as_deref(), Some("YOyqC7"));
        assert_eq!(c.currency, None);

        let precise = sale(r#"{"order_id":42,"commission_amount":"0.123456","sale_amount":"12345678901234567.5","currency":"eur"}"#)
            .unwrap()
            .unwrap();
        assert_eq!(precise.order_id.as_deref(), Some("42"));
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
        let a = defining_fields(Some("sale"), &parse_object(SEED.as_bytes()).unwrap());
        let b = defining_fields(
            Some("sale"),
            &parse_object(br#"{"tracking_id":"YOyqC7","sale_amount":"75","commission_amount":"15.0","order_id":"ORDER_TEST_001","event_id":"ref_evt_123456","event_type":"sale","note":"retry"}"#).unwrap(),
        );
        assert_eq!(crate::json::fingerprint(&a), crate::json::fingerprint(&b));
        let c = defining_fields(
            Some("sale"),
            &parse_object(br#"{"event_type":"sale","order_id":"ORDER_TEST_001","commission_amount":16,"sale_amount":75,"tracking_id":"YOyqC7"}"#).unwrap(),
        );
        assert_ne!(crate::json::fingerprint(&a), crate::json::fingerprint(&c));
    }

    /// providers.md §1.2's example body.
    const DELIVERY: &str = r#"{"id":987654321,"created":"2020-02-14 18:48:42","status":"PENDING","denied_reason_code":null,"is_recurring":false,"total_items":"1","total":"59.00","commission_total":"5.90","currency":"USD","order_id":"1001","affiliate":{"id":123,"code":"a3y7"}}"#;

    fn delivery(body: &str) -> Result<Option<NewConversion>, PayloadError> {
        conversion(None, &parse_object(body.as_bytes()).unwrap())
    }

    /// The example body with `field` set to the JSON text `value` (or removed, `None`).
    fn with(field: &str, value: Option<&str>) -> String {
        let mut body = parse_object(DELIVERY.as_bytes()).unwrap();
        match value {
            Some(v) => body.insert(field.into(), serde_json::from_str(v).unwrap()),
            None => body.remove(field),
        };
        Value::Object(body).to_string()
    }

    #[test]
    fn a_conversion_delivery_is_recognised_by_its_body() {
        let c = delivery(DELIVERY).unwrap().unwrap();
        assert_eq!(c.external_conversion_id.as_deref(), Some("987654321"));
        assert_eq!(c.status.as_deref(), Some("PENDING"));
        assert_eq!(c.sale_amount.to_string(), "59.00");
        assert_eq!(c.commission_amount.to_string(), "5.90");
        assert_eq!(c.currency.as_deref(), Some("USD"));
        assert_eq!(c.order_id.as_deref(), Some("1001"));
        assert_eq!(c.affiliate_id.as_deref(), Some("123"));
        assert_eq!(c.affiliate_code.as_deref(), Some("a3y7"));
        assert_eq!(
            c.source_updated_at.as_deref(),
            Some("2020-02-14T18:48:42.000000Z"),
            "created, read as UTC, when there is no updated"
        );
        let updated = delivery(&with("updated", Some(r#""2020-02-15 09:00:00""#)))
            .unwrap()
            .unwrap();
        assert_eq!(
            updated.source_updated_at.as_deref(),
            Some("2020-02-15T09:00:00.000000Z")
        );
        let minimal =
            delivery(r#"{"id":"c-1","status":"approved","total":1,"commission_total":"0.1"}"#)
                .unwrap()
                .unwrap();
        assert_eq!(minimal.status.as_deref(), Some("APPROVED"));
        assert_eq!(minimal.order_id, None);
        assert_eq!(minimal.source_updated_at, None);
        assert_eq!(minimal.affiliate_id, None);

        // The body decides, not the topic; a seed-style sale stays a sale.
        for missing in ["id", "status", "total", "commission_total"] {
            assert_eq!(delivery(&with(missing, None)).unwrap(), None, "{missing}");
        }
        let body = parse_object(DELIVERY.as_bytes()).unwrap();
        assert!(
            conversion(Some("APPROVED_CONVERSION"), &body)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            conversion(Some("sale"), &body).unwrap_err().field,
            "commission_amount"
        );
    }

    #[test]
    fn invalid_conversion_fields_name_the_field() {
        let cases = [
            ("id", Some("1.5"), "id"),
            ("id", Some(r#""""#), "id"),
            ("status", Some(r#""""#), "status"),
            ("status", Some(r#""pend ing""#), "status"),
            ("status", Some(r#""ÄPPROVED""#), "status"),
            (
                "status",
                Some(&format!(r#""{}""#, "A".repeat(33))),
                "status",
            ),
            ("status", Some("null"), "status"),
            ("status", Some("1"), "status"),
            ("total", Some(r#""-1""#), "total"),
            ("total", Some("0.1234567"), "total"),
            ("commission_total", Some(r#""five""#), "commission_total"),
            ("commission_total", Some("null"), "commission_total"),
            ("currency", Some(r#""US""#), "currency"),
            ("order_id", Some("[]"), "order_id"),
            ("updated", Some(r#""2020-02-14T18:48:42Z""#), "updated"),
            ("updated", Some(r#""2020-02-30 10:00:00""#), "updated"),
            ("created", Some("1581706122"), "created"),
            ("created", Some(r#""0000-01-01 00:00:00""#), "created"),
            ("affiliate", Some("5"), "affiliate"),
            ("affiliate", Some(r#"{"id":true}"#), "affiliate.id"),
            ("affiliate", Some(r#"{"code":7}"#), "affiliate.code"),
        ];
        for (name, value, field) in cases {
            let body = with(name, value);
            assert_eq!(delivery(&body).unwrap_err().field, field, "{body}");
        }
        assert_eq!(
            delivery(&with("status", Some(&format!(r#""{}""#, "A".repeat(32)))))
                .unwrap()
                .unwrap()
                .status
                .map(|s| s.len()),
            Some(32)
        );
    }

    #[test]
    fn a_conversion_fingerprint_covers_its_lifecycle_fields_by_value() {
        let print = |body: &str| {
            crate::json::fingerprint(&defining_fields(
                None,
                &parse_object(body.as_bytes()).unwrap(),
            ))
        };
        let base = print(DELIVERY);
        assert_eq!(base, print(&with("total", Some("59"))), "amounts by value");
        assert_eq!(base, print(&with("id", Some(r#""987654321""#))));
        assert_eq!(base, print(&with("status", Some(r#""pending""#))));
        assert_eq!(
            base,
            print(&with("is_recurring", Some("true"))),
            "not defining"
        );
        for (field, value) in [
            ("status", r#""APPROVED""#),
            ("total", "60"),
            ("commission_total", "6"),
            ("currency", r#""EUR""#),
            ("order_id", r#""1002""#),
            ("updated", r#""2020-02-15 00:00:00""#),
            ("created", r#""2020-02-14 18:48:43""#),
        ] {
            assert_ne!(base, print(&with(field, Some(value))), "{field}");
        }
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
