//! The one mapping from every failure to an HTTP answer: a status and a JSON body of
//! the same shape. 5xx answers say nothing of the cause (no SQL, no paths); the cause
//! is logged instead.

use serde_json::json;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::error::{PayloadError, SignatureError};
use crate::store::StoreError;

/// Seconds a provider should wait before retrying after a 503.
pub const RETRY_AFTER_SECS: u64 = 5;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("body larger than {limit} bytes")]
    PayloadTooLarge { limit: u64 },
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    #[error("the body did not arrive within {secs} s")]
    BodyTimeout { secs: u64 },
    #[error("the body could not be read")]
    BodyUnreadable,
    #[error(transparent)]
    InvalidPayload(#[from] PayloadError),
    #[error(transparent)]
    InvalidSignature(#[from] SignatureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a valid admin token is required")]
    Unauthorized,
    #[error("this form did not come from the console")]
    Forbidden,
    #[error(transparent)]
    InvalidFilter(#[from] crate::read::InvalidFilter),
    #[error("the source {name} has no forward_to setting")]
    NotForwarding { name: String },
    /// SPEC §5.1: 10 wrong admin tokens from one address within 10 minutes.
    #[error("too many wrong admin tokens from this address; retry in {retry_after} s")]
    TooManyAttempts { retry_after: u64 },
    /// `max_requests` are in flight already (see `http::limits`).
    #[error("the server is busy with too many requests; retry later")]
    TooManyRequests,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ApiError::BodyUnreadable | ApiError::InvalidPayload(_) => StatusCode::BAD_REQUEST,
            ApiError::InvalidSignature(_) => StatusCode::UNAUTHORIZED,
            ApiError::Store(_) | ApiError::TooManyRequests => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidFilter(_) => StatusCode::BAD_REQUEST,
            ApiError::NotForwarding { .. } => StatusCode::CONFLICT,
        }
    }

    /// Stable machine-readable code, the `error` field of the body.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTimeout { .. } => "request_timeout",
            ApiError::BodyUnreadable => "invalid_payload",
            ApiError::InvalidPayload(_) => "invalid_payload",
            ApiError::InvalidSignature(_) => "invalid_signature",
            ApiError::Store(_) => "store_unavailable",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::TooManyAttempts { .. } => "too_many_attempts",
            ApiError::InvalidFilter(_) => "invalid_filter",
            ApiError::NotForwarding { .. } => "not_forwarding",
            ApiError::TooManyRequests => "overloaded",
        }
    }

    pub fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code() });
        match &self {
            ApiError::InvalidPayload(e) => {
                body["message"] = e.message.clone().into();
                body["field"] = e.field.clone().into();
            }
            ApiError::InvalidSignature(e) => {
                body["message"] = e.to_string().into();
                body["reason"] = e.reason().into();
            }
            ApiError::InvalidFilter(e) => {
                body["message"] = e.to_string().into();
                body["parameter"] = e.parameter.clone().into();
            }
            ApiError::Store(e) => {
                // The cause may hold SQL or paths: log it, answer generically.
                tracing::error!(error = %e, "store failure answered 503");
                body["message"] = "the event store is unavailable; retry later".into();
            }
            other => body["message"] = other.to_string().into(),
        }
        let mut response = json_response(self.status(), &body);
        if let Some(secs) = self.retry_after() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }

    /// The `Retry-After` seconds this answer carries, if any.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Store(_) => Some(RETRY_AFTER_SECS),
            // Requests in flight end within the store timeout; a second spreads retries
            // without holding a provider back for long.
            ApiError::TooManyRequests => Some(1),
            ApiError::TooManyAttempts { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

/// A JSON response with `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    json_bytes_response(status, body)
}

/// A JSON answer from anything serialisable, printed once, straight into the body.
pub fn json_bytes_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    // Serialising plain data into memory cannot fail; `null` would only hide a bug.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Routing rejections (unknown path, wrong method) as JSON errors; every other
/// rejection is a malformed request.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, std::convert::Infallible> {
    let error = if rejection.is_not_found() {
        ApiError::NotFound
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else {
        tracing::debug!(?rejection, "request rejected");
        ApiError::BodyUnreadable
    };
    Ok(error.into_response())
}
