//! The admin JSON API (SPEC §5.1): `GET /admin/api/…`, each answer built from store read
//! verbs. The caller has already proved the bearer token.

use serde_json::{Value, json};
use warp::http::{Method, StatusCode};
use warp::reply::Response;

use super::query::{self, PageQuery};
use super::{decode_segment, detail};
use crate::http::App;
use crate::http::error::{ApiError, json_response};
use crate::read::{ConversionFilter, ConversionItem, Cursor, EventFilter, EventItem, page};
use crate::store::{Store, StoreError};

/// Answers one API request; `path` is what follows `/admin/api/`, still percent-encoded.
pub async fn handle(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // The one state-changing endpoint: queue an event's forward again (SPEC §6).
    if let ["events", source, event_id, "forward"] = segments.as_slice() {
        if method != Method::POST {
            return Err(ApiError::MethodNotAllowed);
        }
        return crate::http::forward::queue(app, source, event_id).await;
    }
    let known = matches!(
        segments.as_slice(),
        ["events"]
            | ["events", _, _]
            | ["conversions"]
            | ["conversions", "summary"]
            | ["stats"]
            | ["rejections"]
    );
    if !known {
        return Err(ApiError::NotFound);
    }
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let body = match segments.as_slice() {
        ["events"] => events(app, query::events(query)?).await?,
        ["events", source, event_id] => {
            query::none(query)?;
            let (source, event_id) = (decode_segment(source)?, decode_segment(event_id)?);
            let detail = detail::load(app, &source, &event_id)
                .await?
                .ok_or(ApiError::NotFound)?;
            serde_json::to_value(detail.json()).map_err(internal)?
        }
        ["conversions"] => conversions(app, query::conversions(query)?).await?,
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
        _ => return Err(ApiError::NotFound),
    };
    Ok(json_response(StatusCode::OK, &body))
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::Store(crate::store::StoreError::Internal(e.to_string()))
}

async fn events(app: &App, q: PageQuery<EventFilter>) -> Result<Value, ApiError> {
    let (items, next_cursor) = list_events(app, q).await?;
    Ok(json!({ "items": items, "next_cursor": next_cursor }))
}

/// One page of events and the cursor of the next.
pub async fn list_events(
    app: &App,
    q: PageQuery<EventFilter>,
) -> Result<(Vec<EventItem>, Option<String>), ApiError> {
    one_page(
        app,
        q,
        |store, filter, cursor, limit| store.list_events(filter, cursor, limit),
        EventItem::cursor,
    )
    .await
}

async fn conversions(app: &App, q: PageQuery<ConversionFilter>) -> Result<Value, ApiError> {
    let (items, next_cursor) = list_conversions(app, q).await?;
    Ok(json!({ "items": items, "next_cursor": next_cursor }))
}

/// One page of conversions and the cursor of the next.
pub async fn list_conversions(
    app: &App,
    q: PageQuery<ConversionFilter>,
) -> Result<(Vec<ConversionItem>, Option<String>), ApiError> {
    one_page(
        app,
        q,
        |store, filter, cursor, limit| store.list_conversions(filter, cursor, limit),
        ConversionItem::cursor,
    )
    .await
}

/// A store verb that lists `T`s matching an `F` after a cursor.
type ListVerb<F, T> = fn(&dyn Store, &F, Option<&Cursor>, u32) -> Result<Vec<T>, StoreError>;

/// Asks the store for one row more than the page, which tells whether a next page exists
/// without counting.
async fn one_page<F, T>(
    app: &App,
    q: PageQuery<F>,
    fetch: ListVerb<F, T>,
    key: fn(&T) -> Cursor,
) -> Result<(Vec<T>, Option<String>), ApiError>
where
    F: Send + 'static,
    T: Send + 'static,
{
    let limit = q.limit;
    let rows = app
        .store_call(move |store| fetch(store, &q.filter, q.cursor.as_ref(), limit + 1))
        .await?;
    Ok(page(rows, limit, key))
}
