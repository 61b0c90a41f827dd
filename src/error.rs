//! Domain errors raised before anything reaches a store. Each is mapped to an HTTP
//! answer in exactly one place, `http::error`. Also the text helpers every layer uses to
//! show an error: on one line ([`chain`], [`one_line`]) and without a password ([`redact`]).

use thiserror::Error;

mod redact;

pub use redact::redact;

/// The body is not an acceptable event: 400 `invalid_payload`, nothing stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct PayloadError {
    /// The offending field (a body field, a header name, or `body` for the whole body).
    pub field: String,
    pub message: String,
}

impl PayloadError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> PayloadError {
        PayloadError {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn body(message: impl Into<String>) -> PayloadError {
        PayloadError::new("body", message)
    }
}

/// Why a delivery's signature was refused: 401 `invalid_signature`, nothing stored.
/// The text helps the sender's developer and never contains a secret or the expected
/// signature.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the signature header {0} is missing")]
    MissingHeader(String),
    #[error("the signature header {0} is not in the provider's format")]
    BadFormat(String),
    #[error("no signature matches the body and a configured secret")]
    NoMatch,
    #[error("the signed timestamp is outside the allowed tolerance")]
    OutsideTolerance,
    /// Off loopback, a source without a secret refuses deliveries unless allowed.
    #[error(
        "this source has no secret configured and the server does not accept unsigned deliveries off loopback"
    )]
    NoSecretConfigured,
}

impl SignatureError {
    /// A short stable label, used as a metric label and in the JSON answer.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missing_header",
            SignatureError::BadFormat(_) => "bad_format",
            SignatureError::NoMatch => "no_match",
            SignatureError::OutsideTolerance => "outside_tolerance",
            SignatureError::NoSecretConfigured => "no_secret_configured",
        }
    }
}

/// An error and its causes on one line, each cause once: drivers and clients put the
/// useful part ("connection refused", the server's message) in a cause, and messages may
/// carry DETAIL/HINT lines that must not split a log line.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    one_line(&text)
}

/// The most a refusal's reason or its log line says (SPEC §7).
pub const MAX_REASON_CHARS: usize = 200;

/// `text` on one line and at most [`MAX_REASON_CHARS`] characters (an ellipsis marks a
/// cut): what a refusal reports is bounded whatever produced it.
pub fn bounded(text: &str) -> String {
    let text = one_line(text);
    if text.chars().count() <= MAX_REASON_CHARS {
        return text;
    }
    let mut cut: String = text.chars().take(MAX_REASON_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// Text on one line: every run of white space, line breaks included, becomes one space.
/// Server messages carry DETAIL/HINT lines, and an error must never split a log line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
