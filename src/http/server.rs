//! The server loop: accepts connections (with a TLS handshake first when HTTPS is on)
//! and serves [`routes`] on each until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::app::App;
use super::peer::WithPeer;
use super::routes::routes;
use crate::tls::Tls;

/// Serves plain HTTP until `shutdown` resolves; see [`serve_with`].
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    serve_with(app, listener, None, shutdown, grace).await;
}

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish
/// for at most `grace`, and returns.
///
/// The loop is warp's graceful server with one addition: a request head must arrive
/// within the body timeout (hyper's header read timeout, which also bounds an idle
/// keep-alive connection), so a client trickling an endless head cannot hold a
/// connection for ever. warp's own loop cannot set it.
///
/// With `tls`, every connection is a TLS handshake first (bounded by the same timeout),
/// then HTTP/1.1 or HTTP/2 as ALPN chose; a client speaking plain HTTP fails the
/// handshake and never reaches a route.
pub async fn serve_with(
    app: Arc<App>,
    listener: TcpListener,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) {
    let head_timeout = app.body_timeout;
    let service = warp::service(routes(app));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Per-connection failures (reset before accept) are not the
                    // listener's; anything else (EMFILE) gets a pause, not a busy loop.
                    if !matches!(
                        e.kind(),
                        std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                    ) {
                        tracing::error!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let builder = builder.clone();
        let service = TowerToHyperService::new(WithPeer {
            inner: service.clone(),
            peer,
        });
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            // One body for both stream types: hyper's connection future is generic over it.
            macro_rules! serve_on {
                ($io:expr) => {{
                    let connection = builder.serve_connection_with_upgrades($io, service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }};
            }
            let Some(tls) = tls else {
                serve_on!(TokioIo::new(stream));
                return;
            };
            match tokio::time::timeout(head_timeout, tls.accept(stream)).await {
                Ok(Ok(Some(stream))) => serve_on!(TokioIo::new(stream)),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
    // Closing the listener makes new connections refused, not queued.
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all requests finished"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "grace period over with requests still in flight"),
    }
}
