//! The HTTP layer: routes, request reading and answers. It knows the store only as
//! `dyn Store` and never sees SQL.

pub mod admin;
mod body;
pub mod error;
mod server;
mod webhook;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use warp::http::StatusCode;
use warp::{Filter, Reply};

use crate::config::{Config, OnConflict, Sources};
use crate::store::{Store, StoreError, run_blocking};

pub use server::serve;

/// What every request handler shares.
pub struct App {
    pub store: Arc<dyn Store>,
    pub sources: Sources,
    pub max_body_bytes: u64,
    pub on_conflict: OnConflict,
    pub body_timeout: Duration,
    /// The one deadline of a request's store work (see `webhook::record`).
    pub store_timeout: Duration,
    /// The admin side; `None` keeps every `/admin` path a 404.
    pub admin: Option<admin::Admin>,
    /// The last refused deliveries, for the admin side.
    pub rejections: admin::Rejections,
    /// Notified after each commit of a forwarding event, so the worker sends at once.
    pub forward_wake: Arc<Notify>,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: &Config) -> App {
        // Installs the process-wide recorder on first use, so counters are never lost.
        let _ = crate::metrics::handle();
        let mut sources = config.sources.clone();
        sources.serving_on(config.listen, config.allow_unsigned);
        App {
            store,
            sources,
            max_body_bytes: config.max_body_bytes,
            on_conflict: config.on_conflict,
            body_timeout: config.body_timeout,
            store_timeout: config.store.statement_timeout,
            admin: config.admin_token.as_deref().map(admin::Admin::new),
            rejections: admin::Rejections::default(),
            forward_wake: Arc::new(Notify::new()),
        }
    }

    /// Turns the admin side on with this token, as `admin_token` does (configuration
    /// refuses one shorter than [`admin::MIN_TOKEN_LEN`] at startup).
    pub fn with_admin_token(mut self, token: &str) -> App {
        self.admin = Some(admin::Admin::new(token));
        self
    }

    /// Runs a read on the blocking pool. The store bounds its own waits by the store
    /// timeout; the timer here is only a backstop against a store that hangs outright.
    pub async fn store_call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::time::timeout(
            self.store_timeout * 2,
            run_blocking(move || work(store.as_ref())),
        )
        .await
        .map_err(|_| StoreError::Timeout("the store did not answer".into()))?
    }
}

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
