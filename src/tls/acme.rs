//! Certificates from an ACME server (Let's Encrypt by default) with `rustls-acme`: the
//! TLS-ALPN-01 challenge is answered on the listen port itself, the account key and the
//! certificate are kept in `acme_cache` (a restart serves the cached certificate and
//! places no new order), and a certificate is renewed once two thirds of its life has
//! passed: 30 days before expiry for the 90-day certificates Let's Encrypt issues.

use std::sync::Arc;

use futures_util::StreamExt;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::ResolvesServerCert;
use rustls::{ClientConfig, ServerConfig};
use rustls_acme::AcmeConfig;
use rustls_acme::caches::DirCache;

use super::TlsError;
use crate::config::AcmeSettings;

/// The certificate resolver for ordinary handshakes and the server config that answers
/// the challenge; the order and renewal run on a task of their own.
pub(super) struct Acme {
    pub(super) resolver: Arc<dyn ResolvesServerCert>,
    pub(super) challenge: Arc<ServerConfig>,
}

/// Checks what can be checked before serving (the roots file, the cache directory),
/// then starts ordering. Must run inside the tokio runtime.
pub(super) fn start(
    settings: &AcmeSettings,
    provider: Arc<CryptoProvider>,
) -> Result<Acme, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = &settings.ca_roots {
        let named = |why: String| TlsError(format!("acme_ca_roots {}: {why}", path.display()));
        let text = std::fs::read(path).map_err(|e| named(format!("cannot read: {e}")))?;
        let certs = CertificateDer::pem_slice_iter(&text)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| named(format!("not a PEM certificate: {e}")))?;
        if certs.is_empty() {
            return Err(named("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| named(format!("unusable certificate: {e}")))?;
        }
    }
    std::fs::create_dir_all(&settings.cache).map_err(|e| {
        TlsError(format!(
            "acme_cache {}: cannot create: {e}",
            settings.cache.display()
        ))
    })?;
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut config = AcmeConfig::new_with_client_config(&settings.domains, Arc::new(client))
        .directory(&settings.directory)
        .cache(DirCache::new(settings.cache.clone()));
    if let Some(email) = &settings.email {
        config = config.contact_push(format!("mailto:{email}"));
    }
    let mut state = config.state();
    let acme = Acme {
        resolver: state.resolver(),
        challenge: state.challenge_rustls_config_with_provider(provider),
    };
    let domains = settings.domains.join(",");
    tokio::spawn(async move {
        // The state is a stream: each item is one step (a cached certificate deployed,
        // an order placed, a renewal); it retries with backoff by itself after a failure.
        while let Some(event) = state.next().await {
            match event {
                Ok(done) => tracing::info!(domains, "acme: {done:?}"),
                Err(error) => tracing::warn!(domains, "acme: {error:?}"),
            }
        }
    });
    Ok(acme)
}
