//! POST /admin/api/events/{source}/{event_id}/forward: queue one event for forwarding
//! again, now, whatever its state (202). The operator's requeue, for the API and the
//! console's "Forward again" button alike.
//!
//! Not mounted by [`crate::http::routes`]: it must sit behind the admin token. The admin
//! API's dispatcher calls [`requeue`] for `POST` on `["events", source, event_id,
//! "forward"]` once the bearer token is proved; [`requeue_route`] is the same as a warp
//! filter.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::query::decode_segment;
use crate::http::app::App;
use crate::http::error::{ApiError, json_response};
use crate::model::{EventId, Source};
use crate::store::run_blocking;

/// POST /admin/api/events/{source}/{event_id}/forward (the event id percent-encoded).
pub fn requeue_route(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("admin" / "api" / "events" / String / String / "forward")
        .and(warp::post())
        .and(warp::any().map(move || app.clone()))
        .then(
            |source: String, event_id: String, app: Arc<App>| async move {
                requeue(&app, &source, &event_id)
                    .await
                    .unwrap_or_else(ApiError::into_response)
            },
        )
}

/// Queues `event_id` of `source` (both as they appear in the path, percent-encoded) for
/// forwarding now and wakes the worker: 202, or 404 (unknown source or event), 409
/// (`not_forwarding`: the source has no `forward_to`), 503 (store).
pub async fn requeue(app: &App, source: &str, event_id: &str) -> Result<Response, ApiError> {
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
