//! POST /webhooks/{source}: checks in the contract's order (source → size → content
//! type → signature → JSON and id → store) and answers with the outcome.

use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use futures_util::Stream;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;

use super::admin::rejections::Refusal;
use super::app::App;
use super::body::{check_content_type, check_declared_length, read_within};
use super::error::{ApiError, json_bytes_response};
use crate::config::OnConflict;
use crate::json;
use crate::metrics;
use crate::model::clock::{now_text, unix_now};
use crate::model::{EventId, NewEvent, Outcome, Source};
use crate::store::StoreError;

pub async fn receive<S, B>(source: String, headers: HeaderMap, body: S, app: Arc<App>) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let started = Instant::now();
    let mut known_id = None;
    let result = check_and_record(&source, &headers, body, &app, &mut known_id).await;
    let elapsed = started.elapsed();
    let latency_ms = latency_ms(elapsed);
    let label = match Source::parse(&source) {
        Some(source) => metrics::source_label(&app.sources, &source),
        None => "other".to_owned(),
    };
    // One line per delivery, never with a body, a header value or a secret.
    match result {
        Ok((response, outcome, event_id)) => {
            metrics::delivery(&label, outcome, elapsed);
            tracing::info!(source = %source, event_id = %event_id, outcome, latency_ms, "delivery recorded");
            response
        }
        Err(error) => {
            metrics::delivery(&label, error.code(), elapsed);
            let reason = match &error {
                ApiError::InvalidSignature(e) => {
                    metrics::signature_failure(&label, e.reason());
                    Some(e.reason())
                }
                ApiError::Store(e) => {
                    metrics::store_error(e.kind());
                    Some(e.kind())
                }
                _ => None,
            };
            let status = error.status().as_u16();
            if error.status().is_client_error() {
                let error_text = crate::error::bounded(&error.to_string());
                tracing::info!(source = %source, outcome = error.code(), reason, status, latency_ms, error = %error_text, "delivery refused");
                record_refusal(&app, &source, &error, known_id);
            } else {
                tracing::warn!(source = %source, outcome = error.code(), reason, status, latency_ms, "delivery failed");
            }
            error.into_response()
        }
    }
}

/// Milliseconds with a fraction (loopback deliveries take well under one), rounded to
/// the microsecond: `n / 1000.0` prints as at most three decimals, where the nanosecond
/// product printed `0.7625890000000001`.
fn latency_ms(elapsed: std::time::Duration) -> f64 {
    // u64 microseconds last 584 000 years; the cast to f64 is exact below 2^53.
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    micros as f64 / 1000.0
}

/// Keeps a refused delivery for the admin side: what was decided, never what was sent.
/// Routing answers (404, 405) are not deliveries to a source and are not kept.
fn record_refusal(app: &App, source: &str, error: &ApiError, event_id: Option<EventId>) {
    if matches!(error, ApiError::NotFound | ApiError::MethodNotAllowed)
        || Source::parse(source).is_none()
    {
        return;
    }
    let reason = match error {
        ApiError::InvalidSignature(e) => Some(e.reason().to_owned()),
        ApiError::InvalidPayload(e) => Some(e.to_string()),
        _ => None,
    };
    app.rejections.record(Refusal {
        at: now_text(),
        source: source.to_owned(),
        status: error.status().as_u16(),
        error: error.code(),
        reason,
        event_id: event_id.map(|id| id.as_str().to_owned()),
    });
}

/// The answer, the outcome label it is counted under, and the event id.
async fn check_and_record<S, B>(
    source: &str,
    headers: &HeaderMap,
    body: S,
    app: &App,
    known_id: &mut Option<EventId>,
) -> Result<(Response, &'static str, EventId), ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let source = Source::parse(source).ok_or(ApiError::NotFound)?;
    check_declared_length(headers, app.max_body_bytes)?;
    check_content_type(headers)?;
    let raw = read_within(body, app.max_body_bytes, app.body_timeout).await?;

    let settings = app.sources.settings(&source);
    let unsigned = app.sources.unsigned_policy(&settings);
    settings
        .preset
        .verify(&settings.secrets, unsigned, headers, &raw, unix_now())?;

    let parsed = json::parse_object(&raw)?;
    let mut event = settings
        .preset
        .prepare(&source, headers, &raw, &parsed)
        .inspect_err(|_| {
            // An invalid sale under a readable id: the refusal names the event.
            *known_id = settings.preset.event_id(headers, &parsed).ok();
        })?;
    event.forward = settings.forwards(event.event_type.as_deref());
    let (outcome, event) = record(app, event).await?;
    if event.forward && matches!(outcome, Outcome::Processed(_)) {
        // After the commit: the worker sends now instead of at its next poll.
        app.forward_wake.notify_one();
    }
    let label = match outcome {
        Outcome::Processed(_) => "processed",
        Outcome::Duplicate(_) => "duplicate",
        Outcome::Conflict(_) => "conflict",
    };
    Ok((
        outcome_response(&event, outcome, app.on_conflict),
        label,
        event.event_id.clone(),
    ))
}

/// Records the event under the request's one deadline: the store timeout, counted from
/// here, bounds every wait inside (a queue, a pool, a lock) together, not each of them.
/// The store enforces it, so that its answer is the truth: a 503 means nothing was
/// recorded. The timer here is only a backstop against a store that hangs outright (a
/// dead disk). The event comes back with the outcome, so the body it holds (up to the
/// body limit) is never copied.
async fn record(app: &App, event: NewEvent) -> Result<(Outcome, NewEvent), StoreError> {
    let deadline = Instant::now() + app.store_timeout;
    let pending = app.store.clone().process_async(event, deadline);
    tokio::time::timeout_at((deadline + app.store_timeout).into(), pending)
        .await
        .map_err(|_| StoreError::Timeout("the store did not answer".into()))?
}

/// The body of a recorded delivery's answer. Its fields are in the order serde_json gives
/// a map's keys (sorted), so the bytes are those the contract's examples show; a typed
/// struct because building a `json!` map and then printing it was a tenth of a
/// duplicate's CPU.
#[derive(serde::Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<bool>,
    conversion_id: Option<i64>,
    /// Present (maybe `null`) when there is a conversion: where it stands now, so a
    /// sender can tell a stale delivery.
    #[serde(skip_serializing_if = "Option::is_none")]
    conversion_status: Option<Option<&'a str>>,
    event_id: &'a EventId,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    source: &'a Source,
    status: &'static str,
    webhook_event_id: i64,
}

/// The answer to a recorded delivery: its status, body and replay headers (SPEC §2, Outcomes).
fn outcome_response(event: &NewEvent, outcome: Outcome, on_conflict: OnConflict) -> Response {
    let receipt = outcome.receipt();
    let has_conversion = receipt.conversion_id.is_some();
    let (status, replayed, conflict, label, message) = match outcome {
        Outcome::Processed(_) => (StatusCode::OK, false, false, "processed", None),
        Outcome::Duplicate(_) => (
            StatusCode::ACCEPTED,
            true,
            false,
            "accepted",
            Some("Event already processed"),
        ),
        Outcome::Conflict(_) => {
            let message = Some(
                "Event id already used with a different payload; the original event stands and this delivery was kept for inspection",
            );
            match on_conflict {
                OnConflict::Accept => (StatusCode::ACCEPTED, true, true, "conflict", message),
                OnConflict::Reject => (StatusCode::CONFLICT, false, true, "conflict", message),
            }
        }
    };
    let answer = Answer {
        applied: (has_conversion && matches!(outcome, Outcome::Processed(_)))
            .then_some(receipt.applied),
        conversion_id: receipt.conversion_id,
        conversion_status: has_conversion.then_some(receipt.conversion_status.as_deref()),
        event_id: &event.event_id,
        message,
        source: &event.source,
        status: label,
        webhook_event_id: receipt.webhook_event_id,
    };
    let mut response = json_bytes_response(status, &answer);
    let headers = response.headers_mut();
    if replayed {
        headers.insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    }
    if conflict {
        headers.insert("X-Idempotency-Conflict", HeaderValue::from_static("true"));
    }
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn latency_is_logged_to_the_microsecond() {
        assert_eq!(
            super::latency_ms(Duration::from_nanos(762_589)).to_string(),
            "0.762"
        );
        assert_eq!(
            super::latency_ms(Duration::from_nanos(1_234_567_890)).to_string(),
            "1234.567"
        );
        assert_eq!(super::latency_ms(Duration::ZERO).to_string(), "0");
    }
}
