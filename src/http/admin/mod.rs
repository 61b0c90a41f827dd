//! The admin side (SPEC §5.1): a JSON API under `/admin/api/` for scripts and a console
//! under `/admin/` for a person. Off unless an admin token is configured: then every
//! `/admin` path is 404, exactly like a path that does not exist. On, the API wants the
//! token as a bearer token and answers anything else (any path, any event) with the same
//! 401, so an unauthenticated caller learns nothing.

mod api;
pub mod auth;
mod console;
pub mod detail;
pub mod forwarding;
mod listing;
pub mod query;
pub mod rejections;
mod requeue;
pub mod sign_in_limit;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Buf;
use futures_util::Stream;
use warp::filters::path::Tail;
use warp::http::{HeaderMap, Method};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::body::read_within;
use super::error::ApiError;
use crate::http::app::App;

pub use auth::{Admin, MIN_TOKEN_LEN};
pub use rejections::{Refusal, Rejections};

/// Every `/admin` path.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::path("admin")
        .and(warp::path::tail())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(query)
        .and(warp::body::stream())
        .and(crate::http::peer::client_ip())
        .and(warp::any().map(move || app.clone()))
        .then(dispatch)
}

async fn dispatch<S, B>(
    tail: Tail,
    method: Method,
    headers: HeaderMap,
    query: String,
    body: S,
    client: Option<IpAddr>,
    app: Arc<App>,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send,
    B: Buf,
{
    let Some(admin) = app.admin.as_ref() else {
        return ApiError::NotFound.into_response();
    };
    let path = tail.as_str();
    // Without a known peer (never on the real server), every such request shares one
    // count: refusing too much rather than too little.
    let client = client.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let result = if path == "api" || path.starts_with("api/") {
        if let Err(e) = check_token(admin, client, Admin::bearer(&headers), "API") {
            return e.into_response();
        }
        let rest = path.strip_prefix("api").unwrap_or_default();
        let body = match read_within(body, console::MAX_FORM_BYTES, app.body_timeout).await {
            Ok(body) => body,
            Err(e) => return e.into_response(),
        };
        api::dispatch(&app, &method, rest, &query, &body).await
    } else {
        let body = match read_within(body, console::MAX_FORM_BYTES, app.body_timeout).await {
            Ok(body) => body,
            Err(e) => return console::error_page(&e),
        };
        let request = console::Request {
            client,
            method: &method,
            path,
            query: &query,
            headers: &headers,
            body,
        };
        return console::dispatch(&app, admin, request)
            .await
            .unwrap_or_else(|e| console::error_page(&e));
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// The brute-force limit and the token, in that order (SPEC §5.1): an address that sent
/// 10 wrong tokens within 10 minutes gets 429 even with the right one; a wrong token is
/// counted. `None` is no token at all (401, not counted: nothing was guessed). Each
/// refusal is logged with the address and where it came, never the token.
pub(crate) fn check_token(
    admin: &Admin,
    client: IpAddr,
    token: Option<&str>,
    via: &'static str,
) -> Result<(), ApiError> {
    let now = Instant::now();
    if let Some(wait) = admin.limit.refused(client, now) {
        let retry_after = sign_in_limit::retry_after_secs(wait);
        tracing::warn!(client = %client, via, retry_after, "admin sign-in refused: too many wrong tokens from this address");
        return Err(ApiError::TooManyAttempts { retry_after });
    }
    match token {
        Some(token) if admin.accepts(token) => Ok(()),
        Some(_) => {
            admin.limit.wrong(client, now);
            tracing::warn!(client = %client, via, "admin sign-in refused: wrong token");
            Err(ApiError::Unauthorized)
        }
        None => Err(ApiError::Unauthorized),
    }
}
