//! hooklatch: receives webhooks and records each event exactly once per
//! `(source, external_event_id)`, turning affiliate sales into conversions in the same
//! atomic step, on SQLite or PostgreSQL.
//!
//! `main.rs` parses settings, opens the store and calls [`serve`]; tests drive
//! [`http::routes`] and [`serve`] directly.

#![forbid(unsafe_code)]

pub mod config;
pub mod error;
pub mod http;
pub mod json;
pub mod metrics;
pub mod model;
pub mod sources;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use http::{App, routes};

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
/// for at most `grace`, and returns.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, finishing requests in flight");
        let _ = stopping_tx.send(());
    };
    let server = warp::serve(routes(app))
        .incoming(listener)
        .graceful(signal)
        .run();
    let deadline = async move {
        if stopping_rx.await.is_err() {
            // The server ended without a shutdown signal; nothing to time out.
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        () = server => tracing::info!("all requests finished"),
        () = deadline => tracing::warn!(grace_secs = grace.as_secs(), "grace period over with requests still in flight"),
    }
}
