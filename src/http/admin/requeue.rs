//! POST /admin/api/events/{source}/{event_id}/forward: queue one event for forwarding
//! again, now, whatever its state (202). The operator's requeue, for the API and the
//! console's "Forward again" button alike.
//!
//! Private to the admin side, with no route of its own: it must sit behind the admin
//! token. The admin API's dispatcher calls [`requeue`] for `POST` on `["events", source,
//! event_id, "forward"]` once the bearer token is proved, and the console once the
//! session and its CSRF token are.

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::query::decode_segment;
use crate::http::app::App;
use crate::http::error::{ApiError, json_response};
use crate::model::{EventId, Source};
use crate::store::run_blocking;

/// Queues `event_id` of `source` (both as they appear in the path, percent-encoded) for
/// forwarding now and wakes the worker: 202, or 404 (unknown source or event), 409
/// (`not_forwarding`: the source has no `forward_to`), 503 (store).
pub(super) async fn requeue(app: &App, source: &str, event_id: &str) -> Result<Response, ApiError> {
    let source = Source::parse(source).ok_or(ApiError::NotFound)?;
    let event_id =
        EventId::parse(&decode_segment(event_id)?, "event_id").map_err(|_| ApiError::NotFound)?;
    if app.sources.forward_to(&source).is_none() {
        return Err(ApiError::NotForwarding {
            name: source.to_string(),
        });
    }
    let store = app.store.clone();
    let (queued, source, event_id) = run_blocking(move || {
        store
            .requeue_forward(&source, &event_id)
            .map(|queued| (queued, source, event_id))
    })
    .await?;
    let webhook_event_id = queued.ok_or(ApiError::NotFound)?;
    app.forward_wake.notify_one();
    tracing::info!(source = %source, event_id = %event_id, "forward queued again by the operator");
    Ok(json_response(
        StatusCode::ACCEPTED,
        &json!({
            "status": "queued",
            "source": source,
            "event_id": event_id,
            "webhook_event_id": webhook_event_id,
        }),
    ))
}
