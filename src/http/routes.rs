//! Every route of the server: the webhook, the probes, the metrics and the admin side,
//! with routing failures answered as JSON.

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use super::app::App;
use super::{admin, error, webhook};
use crate::store::run_blocking;

/// Every route, with routing failures answered as JSON.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    webhook(app.clone())
        .or(healthz())
        .or(readyz(app.clone()))
        .or(metrics())
        .or(admin::routes(app))
        .recover(error::recover)
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// POST /webhooks/{source}
fn webhook(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    // The path is matched before the method, so a wrong method on a real route is 405
    // and anything else is 404.
    warp::path!("webhooks" / String)
        .and(warp::post())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .and(with_app(app))
        .then(webhook::receive)
}

/// GET /healthz: the process is up.
fn healthz() -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("healthz")
        .and(warp::get())
        .map(|| error::json_response(StatusCode::OK, &json!({ "status": "ok" })))
}

/// GET /metrics: Prometheus text exposition (the one answer that is not JSON).
fn metrics() -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("metrics").and(warp::get()).map(|| {
        warp::reply::with_header(
            crate::metrics::render(),
            "content-type",
            "text/plain; version=0.0.4",
        )
    })
}

/// GET /readyz: the store answers.
fn readyz(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = warp::Rejection> + Clone {
    warp::path!("readyz")
        .and(warp::get())
        .and(with_app(app))
        .then(|app: Arc<App>| async move {
            let store = app.store.clone();
            let ping =
                tokio::time::timeout(app.store_timeout, run_blocking(move || store.ping())).await;
            match ping {
                Ok(Ok(())) => error::json_response(
                    StatusCode::OK,
                    &json!({ "status": "ready", "store": app.store.backend() }),
                ),
                Ok(Err(e)) => error::ApiError::Store(e).into_response(),
                Err(_) => error::ApiError::Store(crate::store::StoreError::Timeout(
                    "readiness ping".into(),
                ))
                .into_response(),
            }
        })
}
