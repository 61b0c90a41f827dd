//! The server loop: accepts connections (with a TLS handshake first when HTTPS is on)
//! and serves [`routes`] on each until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use super::app::App;
use super::limits::{Activity, Bounded};
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
/// The loop is warp's graceful server with the bounds of [`super::limits`] added: at
/// most `max_connections` open, at most `max_requests` in flight, HTTP/2 keep-alive
/// pings, and a request head that must arrive within the body timeout (hyper's header
/// read timeout on HTTP/1; on any protocol, a connection with no request in flight for
/// that long is closed). warp's own loop can set none of them.
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
    let limits = app.limits;
    let service = warp::service(routes(app));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let requests = Arc::new(Semaphore::new(limits.max_requests));
    // Each connection holds a receiver; the sender says "stop", and once every receiver
    // is gone every connection has ended.
    let (stop, stopping) = watch::channel(false);
    let mut full_since: Option<Instant> = None;
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = match connections.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                // Once a minute at most: a server kept at its cap would log every accept.
                if full_since.is_none_or(|since| since.elapsed() > Duration::from_secs(60)) {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: new connections wait until one closes"
                    );
                    full_since = Some(Instant::now());
                }
                tokio::select! {
                    slot = connections.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        // Never closed; were it, there would be nothing left to wait for.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
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
        let activity = Arc::new(Activity::default());
        let service = TowerToHyperService::new(Bounded {
            inner: WithPeer {
                inner: service.clone(),
                peer,
            },
            requests: requests.clone(),
            activity: activity.clone(),
        });
        let mut stopping = stopping.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            // One body for both stream types: hyper's connection future is generic over it.
            macro_rules! serve_on {
                ($io:expr) => {{
                    let connection = builder.serve_connection_with_upgrades($io, service);
                    let mut connection = std::pin::pin!(connection);
                    let mut closing = false;
                    loop {
                        tokio::select! {
                            ended = connection.as_mut() => {
                                if let Err(e) = ended {
                                    tracing::debug!(error = %e, "connection ended with an error");
                                }
                                break;
                            }
                            // Finishes what is in flight, then closes (HTTP/2: GOAWAY).
                            () = activity.idle_for(head_timeout), if !closing => {
                                connection.as_mut().graceful_shutdown();
                                closing = true;
                            }
                            _ = stopping.wait_for(|stop| *stop), if !closing => {
                                connection.as_mut().graceful_shutdown();
                                closing = true;
                            }
                        }
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
    drop(stopping);
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    let _ = stop.send(true);
    tokio::select! {
        () = stop.closed() => tracing::info!("all requests finished"),
        () = tokio::time::sleep(grace) => tracing::warn!(grace_secs = grace.as_secs(), "grace period over with requests still in flight"),
    }
}
