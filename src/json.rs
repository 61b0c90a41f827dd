//! Strict JSON reading and the canonical form behind fingerprints.
//!
//! A body is accepted only if it is one JSON object with no duplicate keys (a duplicate
//! makes "the" value of a field ambiguous, so two parsers could fingerprint it
//! differently) nested no deeper than serde_json's recursion limit (128), which turns a
//! hostile nesting into a 400 instead of a stack overflow.
//!
//! The canonical form sorts object keys, drops insignificant whitespace and writes every
//! number by value (`15`, `15.00` and `1.5e1` are the same), so re-serialisation by a
//! provider between retries never looks like a different event.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::PayloadError;

/// Parses `bytes` as one JSON object, rejecting duplicate keys at any depth.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    let value: Value = serde_json::from_slice(bytes).map_err(payload_error_from)?;
    let Value::Object(map) = value else {
        return Err(PayloadError::body("the body must be a JSON object"));
    };
    // Second pass only for duplicates: serde_json keeps the last of two equal keys
    // silently. The body already parsed, so only the duplicate check can fail here.
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.deserialize_any(NoDuplicateKeys)
        .map_err(payload_error_from)?;
    Ok(map)
}

/// The 400 a serde_json failure becomes, in words a sender can act on.
fn payload_error_from(err: serde_json::Error) -> PayloadError {
    let text = err.to_string();
    if text.contains("recursion limit") {
        PayloadError::body("the JSON body is nested too deeply")
    } else if text.contains("duplicate key") {
        PayloadError::body(text)
    } else {
        PayloadError::body(format!("the body is not valid JSON: {text}"))
    }
}

/// Walks a document and fails on the first object with two equal keys.
struct NoDuplicateKeys;

impl<'de> de::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NoDuplicateKeys)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(self)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(self)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(self)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(self)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(self)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                // Where, never which: the key is the sender's text, up to the body limit,
                // and this message becomes a refusal's reason and log line (SPEC §7).
                // serde_json adds the line and column.
                return Err(de::Error::custom("duplicate key"));
            }
            map.next_value::<NoDuplicateKeys>()?;
        }
        Ok(self)
    }
}

/// True when `text` is a number in JSON syntax (`-?int(.frac)?(e[+-]?exp)?`).
pub fn is_json_number(text: &str) -> bool {
    split_number(text).is_some()
}

/// (negative, integer digits, fraction digits, exponent digits with sign)
fn split_number(text: &str) -> Option<(bool, &str, &str, &str)> {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let (int, frac) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let int_ok = digits(int) && (int == "0" || !int.starts_with('0'));
    let frac_ok = !mantissa.contains('.') || digits(frac);
    let exp_ok =
        !rest.contains(['e', 'E']) || digits(exponent.strip_prefix(['+', '-']).unwrap_or(exponent));
    (int_ok && frac_ok && exp_ok).then_some((negative, int, frac, exponent))
}

/// The canonical text of a JSON number: significant digits and a power of ten, so equal
/// values give equal text whatever their notation (`15.00` and `1.5e1` both give `15`).
fn canonical_number(text: &str) -> String {
    let Some((negative, int, frac, exponent)) = split_number(text) else {
        return text.to_owned();
    };
    let Ok(exponent) = (if exponent.is_empty() {
        Ok(0i64)
    } else {
        exponent.parse::<i64>()
    }) else {
        // An exponent beyond i64 cannot be compared by value; its text is its identity.
        return text.to_owned();
    };
    let digits: String = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return "0".to_owned();
    }
    let trimmed = significant.trim_end_matches('0');
    let scale =
        i128::from(exponent) - frac.len() as i128 + (significant.len() - trimmed.len()) as i128;
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{trimmed}")
    } else {
        format!("{sign}{trimmed}e{scale}")
    }
}

/// Writes `value` in canonical form: sorted keys, no whitespace, numbers by value.
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&canonical_number(&n.to_string())),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, &[], out),
    }
}

/// An object in canonical form, leaving out the top-level keys in `skip`.
fn write_object(map: &Map<String, Value>, skip: &[&str], out: &mut String) {
    let mut keys: Vec<&String> = map.keys().filter(|k| !skip.contains(&k.as_str())).collect();
    keys.sort();
    out.push('{');
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        write_canonical(&map[key], out);
    }
    out.push('}');
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escaping is deterministic, which is all a fingerprint needs, and
    // stored fingerprints depend on it: text it would not escape (no quote, backslash or
    // control character) is written as it is, without a copy; anything else goes
    // through serde_json itself.
    if !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str(&Value::String(s.to_owned()).to_string()),
    }
}

/// Lowercase hex SHA-256 of the canonical form of `value`.
pub fn fingerprint(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical(value).as_bytes()))
}

/// The fingerprint of an object without its top-level keys in `skip`, without copying it.
pub fn fingerprint_object(map: &Map<String, Value>, skip: &[&str]) -> String {
    let mut out = String::new();
    write_object(map, skip, &mut out);
    hex::encode(Sha256::digest(out.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(text: &str) -> String {
        fingerprint(&Value::Object(parse_object(text.as_bytes()).unwrap()))
    }

    /// Stored fingerprints were made with serde_json's own escaping: the fast path for
    /// text that needs none must write exactly the same bytes.
    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "ünïcødé ✓ 😀",
            "quote \" in",
            "back\\slash",
            "tab\tnew\nline",
            "\u{0}\u{1f}",
            "del \u{7f}",
            "</script>",
            "line\u{2028}sep",
        ] {
            let mut out = String::new();
            write_string(text, &mut out);
            assert_eq!(out, serde_json::to_string(text).unwrap(), "{text:?}");
        }
    }

    #[test]
    fn numbers_are_compared_by_value() {
        for (a, b) in [
            ("15", "15.00"),
            ("15", "1.5e1"),
            ("150", "1.5E+2"),
            ("0.015", "15e-3"),
            ("0", "-0.0"),
            ("-7.10", "-71e-1"),
        ] {
            assert_eq!(canonical_number(a), canonical_number(b), "{a} vs {b}");
        }
        assert_ne!(canonical_number("15"), canonical_number("150"));
        assert_ne!(canonical_number("15"), canonical_number("-15"));
        assert_ne!(canonical_number("0.15"), canonical_number("1.5"));
    }

    #[test]
    fn key_order_whitespace_and_number_notation_do_not_change_a_fingerprint() {
        assert_eq!(
            fp(r#"{"a":15,"b":{"y":[1,2],"x":"s"}}"#),
            fp("{ \"b\" : { \"x\" : \"s\", \"y\" : [ 1.0, 2.00 ] },\n \"a\" : 15.00 }")
        );
        assert_ne!(fp(r#"{"a":15}"#), fp(r#"{"a":"15"}"#));
        assert_ne!(fp(r#"{"a":[1,2]}"#), fp(r#"{"a":[2,1]}"#));
    }

    #[test]
    fn duplicate_keys_are_rejected_at_any_depth() {
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_err());
        let nested = parse_object(br#"{"a":{"b":[{"c":1,"c":1}]}}"#).unwrap_err();
        assert!(nested.message.contains("duplicate key"), "{nested:?}");
        assert!(parse_object(br#"{"a":{"b":1},"c":{"b":1}}"#).is_ok());
    }

    #[test]
    fn only_objects_are_bodies() {
        for body in ["[]", "1", "\"s\"", "null", "", "{", "{\"a\":1} x"] {
            assert!(parse_object(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let depth = 100_000;
        let body = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        let err = parse_object(body.as_bytes()).unwrap_err();
        assert!(err.message.contains("nested too deeply"), "{err:?}");
    }

    #[test]
    fn json_number_syntax() {
        for ok in ["0", "-0", "15", "15.00", "1e3", "1.5E-2", "0.5"] {
            assert!(is_json_number(ok), "{ok}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", "Infinity", " 1",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }
}
