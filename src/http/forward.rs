//! POST /admin/api/events/{source}/{event_id}/forward: queue one event for forwarding
//! again, now, whatever its state (202).
//!
//! Not mounted by [`super::routes`]: it must sit behind the admin token. The admin
//! router mounts it as `admin_auth.and(forward::requeue_route(app))` (or calls
//! [`requeue`] from its own path filter).

use std::sync::Arc;

use percent_encoding::percent_decode_str;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::App;
use super::error::{ApiError, json_response};
use crate::model::{EventId, Source};
use crate::store::run_blocking;

/// POST /admin/api/events/{source}/{event_id}/forward (the event id percent-encoded).
pub fn requeue_route(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("admin" / "api" / "events" / String / String / "forward")
        .and(warp::post())
        .and(warp::any().map(move || app.clone()))
        .then(requeue)
}

/// Queues `event_id` of `source` (both as they appear in the path) and wakes the worker.
pub async fn requeue(source: String, event_id: String, app: Arc<App>) -> Response {
    match queue(&source, &event_id, &app).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn queue(source: &str, event_id: &str, app: &App) -> Result<Response, ApiError> {
    let source = Source::parse(source).ok_or(ApiError::NotFound)?;
    let event_id = percent_decode_str(event_id)
        .decode_utf8()
        .ok()
        .and_then(|id| EventId::parse(&id, "event_id").ok())
        .ok_or(ApiError::NotFound)?;
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
