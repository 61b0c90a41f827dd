//! Reading a request body within the size limit and the body timeout (webhooks and the
//! admin side alike). A declared
//! `Content-Length` over the limit is refused before a byte is read; a chunked body is
//! refused as soon as it crosses the limit, so memory per request stays bounded.

use bytes::{Buf, BytesMut};
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, header};

use super::error::ApiError;

/// Fails early when the declared length is over the limit.
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// `application/json`, any case, parameters (such as charset) allowed.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// [`read_limited`] within `timeout` from now: a client trickling its body (or sending
/// a `Content-Length` it never fills) gets a 408 at the deadline instead of holding the
/// request, its connection and its slot for as long as it likes.
pub async fn read_within<S, B>(
    stream: S,
    limit: u64,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    tokio::time::timeout(timeout, read_limited(stream, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout {
            secs: timeout.as_secs(),
        })?
}

/// Collects the body, stopping at the first byte past `limit`.
async fn read_limited<S, B>(stream: S, limit: u64) -> Result<bytes::Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::BodyUnreadable)?;
        if (body.len() + chunk.remaining()) as u64 > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        while chunk.has_remaining() {
            let piece = chunk.chunk();
            body.extend_from_slice(piece);
            let n = piece.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}
