//! The admin JSON API (SPEC §5.1): `GET /admin/api/…`, each answer built from store read
//! verbs. The caller has already proved the bearer token.

use serde::Serialize;
use serde_json::{Value, json};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::listing::{Listed, one_page};
use super::query::{self, PageQuery, decode_segment};
use super::{detail, forwarding, requeue};
use crate::http::app::App;
use crate::http::error::{ApiError, json_response};
use crate::read::{ConversionItem, EventItem};

/// Answers one API request; `path` is what follows `/admin/api/`, still percent-encoded.
pub async fn dispatch(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // Forwarding per source (SPEC §6.1): its state changes and replay.
    if let ["forwarding", source, action] = segments.as_slice() {
        if method != Method::POST {
            return Err(ApiError::MethodNotAllowed);
        }
        query::none(query)?;
        let source = forwarding::source_in_path(source)?;
        let answer = match *action {
            "pause" | "resume" => forwarding::set_paused(app, &source, *action == "pause").await?,
            "replay" => {
                let (since, until) = forwarding::replay_body(body)?;
                let queued = forwarding::replay(app, &source, since, until).await?;
                json!({ "status": "queued", "source": source, "queued": queued })
            }
            _ => return Err(ApiError::NotFound),
        };
        let status = if *action == "replay" {
            StatusCode::ACCEPTED
        } else {
            StatusCode::OK
        };
        return Ok(json_response(status, &answer));
    }
    // The one state-changing endpoint: queue an event's forward again (SPEC §6).
    if let ["events", source, event_id, "forward"] = segments.as_slice() {
        if method != Method::POST {
            return Err(ApiError::MethodNotAllowed);
        }
        return requeue::requeue(app, source, event_id).await;
    }
    let known = matches!(
        segments.as_slice(),
        ["events"]
            | ["events", _, _]
            | ["conversions"]
            | ["conversions", "summary"]
            | ["stats"]
            | ["rejections"]
            | ["forwarding"]
    );
    if !known {
        return Err(ApiError::NotFound);
    }
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let body = match segments.as_slice() {
        ["events"] => list_json::<EventItem>(app, query::events(query)?).await?,
        ["events", source, event_id] => {
            query::none(query)?;
            let (source, event_id) = (decode_segment(source)?, decode_segment(event_id)?);
            let detail = detail::load(app, &source, &event_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            serde_json::to_value(detail.json()).map_err(internal)?
        }
        ["conversions"] => list_json::<ConversionItem>(app, query::conversions(query)?).await?,
        ["conversions", "summary"] => {
            query::none(query)?;
            let groups = app.store_call(|store| store.conversion_summary()).await?;
            json!({ "groups": groups })
        }
        ["stats"] => {
            query::none(query)?;
            let sources = app.store_call(|store| store.source_stats()).await?;
            json!({ "sources": sources })
        }
        ["rejections"] => {
            query::none(query)?;
            json!({ "items": app.rejections.recent() })
        }
        ["forwarding"] => {
            query::none(query)?;
            json!({ "items": forwarding::list(app).await? })
        }
        _ => return Err(ApiError::NotFound),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Store(crate::store::StoreError::Internal(e.to_string()))
}

/// One page of a list as JSON: `items` and `next_cursor`.
async fn list_json<T: Listed + Serialize>(
    app: &App,
    q: PageQuery<T::Filter>,
) -> Result<Value, ApiError> {
    serde_json::to_value(one_page::<T>(app, q).await?).map_err(internal)
}
