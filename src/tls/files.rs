//! A certificate and key from PEM files, checked at load and swapped on reload: the
//! resolver hands each new handshake the current pair, so connections already open keep
//! the pair they were made with, and a bad new pair leaves the old one serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// Serves the pair last loaded from `cert` and `key`.
#[derive(Debug)]
pub(super) struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloading {
    pub(super) fn load(
        cert: &Path,
        key: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Reloading, TlsError> {
        let pair = load_pair(cert, key, &provider)?;
        Ok(Reloading {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(pair)),
        })
    }

    /// Reads both files again; on any error the pair in use stays.
    pub(super) fn reload(&self) -> Result<(), TlsError> {
        let pair = load_pair(&self.cert, &self.key, &self.provider)?;
        *self.current.write() = Arc::new(pair);
        Ok(())
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

/// The chain in `cert` with the key in `key`; each failure names its file.
fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_text = read(cert, "tls_cert")?;
    let chain = CertificateDer::pem_slice_iter(&cert_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error("tls_cert", cert, &format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(file_error("tls_cert", cert, "holds no PEM certificate"));
    }
    let key_text = read(key, "tls_key")?;
    let private = PrivateKeyDer::from_pem_slice(&key_text)
        .map_err(|e| file_error("tls_key", key, &format!("not a PEM private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(private)
        .map_err(|e| file_error("tls_key", key, &format!("unusable private key: {e}")))?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|_| {
        TlsError(format!(
            "tls_key {} does not match the certificate in tls_cert {}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(pair)
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| file_error(setting, path, &format!("cannot read: {e}")))
}

fn file_error(setting: &str, path: &Path, why: &str) -> TlsError {
    TlsError(format!("{setting} {}: {why}", path.display()))
}
