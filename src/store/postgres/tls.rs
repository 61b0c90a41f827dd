//! TLS to PostgreSQL (SPEC §9): `sslmode` and `sslrootcert` as libpq reads them, with
//! rustls (aws-lc-rs, the provider the listener uses, named explicitly).
//!
//! The driver only knows `disable`, `prefer` and `require`, and does the TLS handshake
//! through whatever `MakeTlsConnect` it is given. So `verify-ca` and `verify-full` are
//! `require` to the driver, and the certificate check is ours ([`Verifier`]): every
//! mode checks the handshake's signature; `verify-ca` (and `prefer`/`require` given a
//! `sslrootcert`) also the chain; `verify-full` also the host name, the one of the
//! host being connected to in a multi-host URL.
//!
//! Every connection, the pool's, the migrations' and the cancel requests', goes through
//! one [`Connector`]. It also watches each attempt ([`Reached`]): that is how a `prefer`
//! connection that fell back to plain text is logged, and how a failed check is told
//! apart from the server being unreachable and named with its host.

use std::error::Error as _;
use std::sync::Arc;

use parking_lot::Mutex;
use postgres::config::{Host, SslMode};
use postgres::tls::{MakeTlsConnect, TlsConnect};
use postgres::{Client, Config, Socket};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;
use crate::store::url::{PostgresTls, RootCerts, TlsMode};

type Inner = <MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect;

/// Makes the TLS side of every connection of one store. Cheap to clone.
#[derive(Clone)]
pub(super) struct Connector {
    rustls: MakeRustlsConnect,
    mode: TlsMode,
    /// What a failed chain check names: the `sslrootcert` file or the system's CAs.
    roots: String,
    /// Each host of the URL as "host:port", to name the one a check failed on.
    targets: Vec<(String, String)>,
    /// Hosts already reported as refusing TLS under `prefer`: one warning per host, not
    /// one per pooled connection.
    warned: Arc<Mutex<Vec<String>>>,
}

/// The host a connection attempt reached last, and whether TLS began on it. The driver
/// asks for a TLS connector only once the socket is connected, and stops at the first
/// host that works, so after a success this is that connection.
#[derive(Clone, Default)]
struct Reached(Arc<Mutex<Option<(String, bool)>>>);

impl Connector {
    /// The connector `tls` asks for, and `config` set to what the driver must do before
    /// handing over: negotiate TLS or not. Reads the `sslrootcert` file now, so a
    /// missing or empty one stops startup naming it.
    pub(super) fn new(tls: &PostgresTls, config: &mut Config) -> Result<Connector, StoreError> {
        config.ssl_mode(match tls.mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        });
        let chain =
            matches!(tls.mode, TlsMode::VerifyCa | TlsMode::VerifyFull) || tls.root_cert.is_some();
        let (roots, named) = match (&tls.root_cert, chain) {
            (_, false) => (None, String::new()),
            (Some(RootCerts::File(path)), true) => (
                Some(file_roots(path)?),
                format!("sslrootcert {}", path.display()),
            ),
            (Some(RootCerts::System) | None, true) => {
                (Some(system_roots()?), "the system's CAs".to_owned())
            }
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Verifier {
            roots: roots.map(Arc::new),
            check_name: tls.mode == TlsMode::VerifyFull,
            provider: provider.clone(),
        };
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Internal(format!("TLS to PostgreSQL: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth();
        Ok(Connector {
            rustls: MakeRustlsConnect::new(client),
            mode: tls.mode,
            roots: named,
            targets: targets(config),
            warned: Arc::default(),
        })
    }

    /// What the cancel request of a running statement connects with: the same checks as
    /// the connection it cancels.
    pub(super) fn for_cancel(&self) -> impl MakeTlsConnect<Socket> + Send + 'static {
        Watched {
            rustls: self.rustls.clone(),
            reached: Reached::default(),
        }
    }

    /// Connects as `config` says. On failure, the second value is a one-line account of
    /// the TLS check that failed, when one did: it will fail again the same way, unlike
    /// a server that is down.
    pub(super) fn connect(
        &self,
        config: &Config,
    ) -> Result<Client, (postgres::Error, Option<String>)> {
        let reached = Reached::default();
        let tls = Watched {
            rustls: self.rustls.clone(),
            reached: reached.clone(),
        };
        let last = || reached.0.lock().clone();
        match config.connect(tls) {
            Ok(client) => {
                if let Some((host, false)) = last() {
                    self.fell_back(&host);
                }
                Ok(client)
            }
            Err(e) => {
                let why = last().and_then(|(host, _)| self.explain(&e, &host));
                Err((e, why))
            }
        }
    }

    /// Never silent: a `prefer` connection that is plain text says so, naming the host.
    fn fell_back(&self, host: &str) {
        // The driver offers TLS on a Unix socket too, where PostgreSQL never has it.
        if self.mode != TlsMode::Prefer || host.is_empty() || host.starts_with('/') {
            return;
        }
        let mut warned = self.warned.lock();
        if !warned.iter().any(|h| h == host) {
            warned.push(host.to_owned());
            tracing::warn!(
                "PostgreSQL at {} refused TLS: connected in plain text (sslmode=prefer); set sslmode=require or stronger to refuse that",
                self.target(host)
            );
        }
    }

    /// The failed TLS step behind `err`, on one line, or `None` when it is not a TLS
    /// failure.
    fn explain(&self, err: &postgres::Error, host: &str) -> Option<String> {
        let what = match rustls_cause(err) {
            Some(rustls::Error::InvalidCertificate(cert)) => match cert {
                CertificateError::UnknownIssuer => {
                    format!("certificate not signed by a CA in {}", self.roots)
                }
                CertificateError::NotValidForNameContext {
                    expected,
                    presented,
                } => format!(
                    "certificate not valid for name {:?}: it is for {}",
                    expected.to_str(),
                    presented
                        .iter()
                        .map(|name| plain_name(name))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                CertificateError::Expired => "certificate expired".to_owned(),
                CertificateError::NotValidYet => "certificate not valid yet".to_owned(),
                // rustls words the detailed ones itself (expiry with its dates); the
                // rest are bare variant names.
                other => match other.to_string() {
                    text if text.starts_with("certificate") => text,
                    text => format!("certificate rejected: {text}"),
                },
            },
            Some(other) => format!("TLS handshake failed: {other}"),
            None => {
                // The driver's own TLS refusals carry only a message.
                let text = crate::error::chain(err);
                if text.contains("server does not support TLS") {
                    "the server refuses TLS".to_owned()
                } else if text.contains("no hostname provided for TLS handshake") {
                    "TLS needs a host name to check, and hostaddr alone gives none: add host=NAME"
                        .to_owned()
                } else {
                    return None;
                }
            }
        };
        Some(format!(
            "PostgreSQL at {}: {what} (sslmode={})",
            self.target(host),
            self.mode.name()
        ))
    }

    /// "host:port" when the URL lists `host` once; the bare name when it lists it with
    /// several ports.
    fn target(&self, host: &str) -> String {
        let mut found = self.targets.iter().filter(|(h, _)| h == host);
        match (found.next(), found.next()) {
            (Some((_, target)), None) => target.clone(),
            _ => host.to_owned(),
        }
    }
}

/// A name as rustls lists it (`DnsName("db.example.com")`, `IpAddress(10.0.0.5)`), as
/// the certificate has it.
fn plain_name(listed: &str) -> &str {
    listed
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"))
        .or_else(|| {
            listed
                .strip_prefix("IpAddress(")
                .and_then(|rest| rest.strip_suffix(')'))
        })
        .unwrap_or(listed)
}

/// The rustls error inside a driver error, if the handshake failed in rustls. tokio-rustls
/// wraps it in an `io::Error`, whose `source()` skips it, hence `get_ref`.
fn rustls_cause(err: &postgres::Error) -> Option<&rustls::Error> {
    let mut cause = err.source();
    while let Some(c) = cause {
        if let Some(found) = c.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        cause = c.source();
    }
    None
}

/// Each TCP host of `config` as the name TLS checks (empty with `hostaddr` alone), and
/// how to name it: "host:port", with the address connected to when `hostaddr` gives one.
fn targets(config: &Config) -> Vec<(String, String)> {
    let (hosts, addrs, ports) = (
        config.get_hosts(),
        config.get_hostaddrs(),
        config.get_ports(),
    );
    (0..hosts.len().max(addrs.len()))
        .filter_map(|i| {
            let name = match hosts.get(i) {
                Some(Host::Tcp(name)) => name.clone(),
                Some(_) => return None,
                None => String::new(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            let shown = match (name.is_empty(), addrs.get(i)) {
                (true, Some(addr)) => format!("{addr}:{port}"),
                (false, Some(addr)) => format!("{name}:{port} ({addr})"),
                _ => format!("{name}:{port}"),
            };
            Some((name, shown))
        })
        .collect()
}

fn file_roots(path: &std::path::Path) -> Result<RootCertStore, StoreError> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| StoreError::Unavailable(format!("sslrootcert {shown}: {e}")))?;
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(StoreError::Unavailable(format!(
            "sslrootcert {shown}: no usable PEM certificate in it"
        )));
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(StoreError::Unavailable(
            "no system CA certificates found to check PostgreSQL's certificate: install ca-certificates or set sslrootcert".to_owned(),
        ));
    }
    Ok(roots)
}

/// The driver's `MakeTlsConnect`, noting which host each attempt reached.
struct Watched {
    rustls: MakeRustlsConnect,
    reached: Reached,
}

impl MakeTlsConnect<Socket> for Watched {
    type Stream = <Inner as TlsConnect<Socket>>::Stream;
    type TlsConnect = Begun;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, host: &str) -> Result<Begun, Self::Error> {
        *self.reached.0.lock() = Some((host.to_owned(), false));
        Ok(Begun {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.rustls, host)?,
            reached: self.reached.clone(),
        })
    }
}

/// One attempt's TLS connector; called only when the server agreed to TLS.
struct Begun {
    inner: Inner,
    reached: Reached,
}

impl TlsConnect<Socket> for Begun {
    type Stream = <Inner as TlsConnect<Socket>>::Stream;
    type Error = <Inner as TlsConnect<Socket>>::Error;
    type Future = <Inner as TlsConnect<Socket>>::Future;

    fn connect(self, stream: Socket) -> Self::Future {
        if let Some((_, tls)) = self.reached.0.lock().as_mut() {
            *tls = true;
        }
        self.inner.connect(stream)
    }
}

/// The certificate check of every mode. `roots: None` is `prefer`/`require` without
/// `sslrootcert`: any chain is accepted, but the server must still prove it holds the
/// certificate's key (the handshake signature), so what is encrypted reaches whoever
/// presented that certificate.
#[derive(Debug)]
struct Verifier {
    roots: Option<Arc<RootCertStore>>,
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if self.check_name {
            verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
