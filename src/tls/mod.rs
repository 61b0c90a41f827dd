//! HTTPS on the listener (SPEC §9): a rustls acceptor whose certificate comes from files
//! (reloaded on SIGHUP) or from ACME. HTTP/1.1 and HTTP/2 are offered by ALPN. The HTTP
//! layer only calls [`Tls::accept`]; it never sees where the certificate came from.
//!
//! One crypto provider (aws-lc-rs, which reqwest already brings) is named explicitly, so
//! no process-wide default has to be installed.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{Acceptor, ResolvesServerCert};
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::Https;

mod acme;
mod files;

/// A certificate that cannot be used: one line naming the setting and the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// What the listener answers handshakes with. Cheap to clone.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ServerConfig>,
    source: Source,
}

#[derive(Clone)]
enum Source {
    Files(Arc<files::Reloading>),
    /// The server config that answers TLS-ALPN-01 challenges.
    Acme(Arc<ServerConfig>),
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl Tls {
    /// The acceptor `https` asks for, or `None` for plain HTTP. For ACME this starts
    /// ordering in the background, so it must run inside the tokio runtime.
    pub fn start(https: &Https) -> Result<Option<Tls>, TlsError> {
        let provider = provider();
        let (resolver, source): (Arc<dyn ResolvesServerCert>, Source) = match https {
            Https::Off => return Ok(None),
            Https::Files { cert, key } => {
                let files = Arc::new(files::Reloading::load(cert, key, provider.clone())?);
                (files.clone(), Source::Files(files))
            }
            Https::Acme(settings) => {
                let acme = acme::start(settings, provider.clone())?;
                (acme.resolver, Source::Acme(acme.challenge))
            }
        };
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(format!("TLS setup: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Some(Tls {
            config: Arc::new(config),
            source,
        }))
    }

    /// Reads the certificate files again (SIGHUP). New handshakes get the new pair;
    /// open connections keep theirs; on an error the old pair stays in use. ACME
    /// certificates renew by themselves, so there is nothing to reload.
    pub fn reload(&self) -> Result<(), TlsError> {
        match &self.source {
            Source::Files(files) => files.reload(),
            Source::Acme(_) => Ok(()),
        }
    }

    /// Whether [`reload`](Self::reload) reads files.
    pub fn reloads_files(&self) -> bool {
        matches!(self.source, Source::Files(_))
    }

    /// The TLS handshake on an accepted connection. `Ok(None)`: the connection was an
    /// ACME challenge, answered and done.
    pub async fn accept(&self, stream: TcpStream) -> std::io::Result<Option<TlsStream<TcpStream>>> {
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
        if let Source::Acme(challenge) = &self.source
            && rustls_acme::is_tls_alpn_challenge(&start.client_hello())
        {
            start.into_stream(challenge.clone()).await?;
            return Ok(None);
        }
        start.into_stream(self.config.clone()).await.map(Some)
    }
}
