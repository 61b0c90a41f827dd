//! The client's address, for what is counted per client (the admin sign-in limit). The
//! server loop marks each request with its connection's peer ([`WithPeer`]); warp's own
//! test requests carry theirs through `warp::addr::remote`.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::task::{Context, Poll};

use warp::Filter;
use warp::http::Request;

/// The TCP peer of the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// A service that marks every request with its connection's peer address.
#[derive(Debug, Clone)]
pub struct WithPeer<S> {
    pub inner: S,
    pub peer: SocketAddr,
}

impl<S, B> tower_service::Service<Request<B>> for WithPeer<S>
where
    S: tower_service::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(PeerAddr(self.peer));
        self.inner.call(request)
    }
}

/// The client's IP address. Behind a reverse proxy this is the proxy's: hooklatch does
/// not trust `X-Forwarded-For`, which any client can write.
pub fn client_ip() -> impl Filter<Extract = (Option<IpAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<PeerAddr>()
        .and(warp::addr::remote())
        .map(|peer: Option<PeerAddr>, remote: Option<SocketAddr>| {
            peer.map(|p| p.0).or(remote).map(|addr| addr.ip())
        })
}
