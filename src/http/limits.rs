//! What one client may hold of the server: connections, requests in flight, and time
//! (the settings are `crate::config::Limits`).
//!
//! - **Connections**: at most `max_connections` are served at once. Past the cap the
//!   accept loop stops accepting until one closes, so new connections wait in the
//!   kernel's listen queue (and, once that is full, clients retry their handshake). Why
//!   wait rather than accept and close: a burst past the cap is then served a little
//!   late instead of refused, and a provider sees a slow answer instead of a reset it
//!   would count as a failed delivery. Waiting is safe because no connection can keep
//!   its slot for ever: one with no request in flight is closed after the body timeout
//!   ([`Activity::idle_for`]), whatever its protocol, and a request's body has the same
//!   deadline.
//! - **Requests**: at most `max_requests` in flight over all connections (HTTP/2 carries
//!   many on one connection). Past it a request is answered 503 with `Retry-After` at
//!   once, through the one error mapping, so a provider retries later ([`Bounded`]).
//!   `GET /healthz` is exempt: it answers 200 for as long as the process runs.
//! - **HTTP/2 keep-alive**: the server pings a connection that has sent nothing for
//!   `http2_keepalive_interval` and closes it when the ping is not answered within
//!   `http2_keepalive_timeout`, so a client that went silent (a dead peer behind a NAT)
//!   does not keep its connection.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use warp::http::Request;
use warp::reply::Response;

use super::error::ApiError;

/// Requests in flight on one connection, and a signal each time that number changes.
#[derive(Debug, Default)]
pub struct Activity {
    in_flight: AtomicUsize,
    changed: Notify,
}

impl Activity {
    /// Resolves once the connection has had no request in flight for `idle` in a row:
    /// from its opening (a client that never sends a whole request head, in either
    /// protocol), and after each answer (an idle keep-alive connection).
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let changed = self.changed.notified();
            let mut changed = std::pin::pin!(changed);
            // Registered before the count is read, so a change in between still wakes it.
            changed.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) > 0 {
                changed.await;
                continue;
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(idle) => return,
            }
        }
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
        InFlight(self.clone())
    }
}

/// One request of a connection, from its head to its answer.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_waiters();
    }
}

/// A connection's service: counts its requests for [`Activity`] and holds each to the
/// server-wide cap on requests in flight.
#[derive(Clone)]
pub struct Bounded<S> {
    pub inner: S,
    /// One permit per request in flight, shared by every connection.
    pub requests: Arc<Semaphore>,
    pub activity: Arc<Activity>,
}

impl<S, B> tower_service::Service<Request<B>> for Bounded<S>
where
    S: tower_service::Service<Request<B>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let in_flight = self.activity.begin();
        let permit = if request.uri().path() == "/healthz" {
            None
        } else {
            match self.requests.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    tracing::warn!(
                        path = request.uri().path(),
                        "request refused: too many requests in flight (max_requests)"
                    );
                    let answer = ApiError::TooManyRequests.into_response();
                    return Box::pin(async move {
                        drop(in_flight);
                        Ok(answer)
                    });
                }
            }
        };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let answer = answer.await;
            drop((permit, in_flight));
            answer
        })
    }
}
