//! HTTPS with automatic certificates (SPEC §9) against Debian's `pebble`, a small ACME
//! server for tests. Pebble runs with `PEBBLE_VA_ALWAYS_VALID=1` (it does not dial the
//! challenge back) on a listener certificate this test makes, which hooklatch trusts
//! through `acme_ca_roots`.
//!
//! Without `pebble` the test says SKIPPED on the terminal; with `CI=true` it fails
//! instead (`.ci/run` installs it).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::binary::{Server, Target, wait_until};
use common::{Backend, in_ci};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

fn pebble_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("pebble"))
        .find(|candidate| candidate.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

fn client(roots: &[CertificateDer<'static>]) -> Arc<ClientConfig> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    Arc::new(
        ClientConfig::builder_with_provider(
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth(),
    )
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A verified TLS connection to `addr` as `localhost`, or why not.
fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Result<Tls, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| e.to_string())?;
    }
    Ok(tls)
}

/// One GET with `Connection: close`; the whole answer as text.
fn get(tls: &mut Tls, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).into_owned()
}

/// Pebble on free ports with a listener certificate for `localhost` signed by a CA of
/// the test's own; killed when dropped.
struct Pebble {
    child: Child,
    directory: String,
    management: SocketAddr,
    ca_file: PathBuf,
    ca: CertificateDer<'static>,
}

impl Pebble {
    fn start(binary: &Path, dir: &Path) -> Pebble {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "pebble listener CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let ca_file = dir.join("pebble-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(dir.join("pebble.crt"), cert.pem()).unwrap();
        std::fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();

        let (acme_port, management_port) = (free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": dir.join("pebble.crt"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": free_port(),
            "tlsPort": free_port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_file = dir.join("pebble.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let child = Command::new(binary)
            .arg("-config")
            .arg(&config_file)
            .env("PEBBLE_VA_ALWAYS_VALID", "1")
            .env("PEBBLE_VA_NOSLEEP", "1")
            // Pebble rejects 5 % of nonces by default to test clients' retries; the
            // test is about certificates, not that.
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble");
        let acme = SocketAddr::from(([127, 0, 0, 1], acme_port));
        assert!(
            wait_until(Duration::from_secs(20), || TcpStream::connect(acme).is_ok()),
            "pebble did not listen on {acme}"
        );
        Pebble {
            child,
            directory: format!("https://localhost:{acme_port}/dir"),
            management: SocketAddr::from(([127, 0, 0, 1], management_port)),
            ca_file,
            ca: ca.der().clone(),
        }
    }

    /// The root pebble signs certificates with (it makes a new one each run).
    fn issuing_root(&self) -> CertificateDer<'static> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut tls) = connect(self.management, client(std::slice::from_ref(&self.ca))) {
                let answer = get(&mut tls, "/roots/0");
                if let Some((_, body)) = answer.split_once("\r\n\r\n")
                    && let Ok(root) = CertificateDer::from_pem_slice(body.as_bytes())
                {
                    return root;
                }
            }
            assert!(Instant::now() < deadline, "pebble's root never came");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn acme_server(target: &Target, pebble: &Pebble, cache: &Path) -> Server {
    Server::start(
        &target.url,
        &[
            "--acme-domains",
            "localhost",
            "--acme-directory",
            &pebble.directory,
            "--acme-ca-roots",
            pebble.ca_file.to_str().unwrap(),
            "--acme-cache",
            cache.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_certificate_is_obtained_then_reused_from_the_cache_after_a_restart() {
    let Some(binary) = pebble_binary() else {
        assert!(
            !in_ci(),
            "CI=true but pebble is missing (apt-get install -y pebble)"
        );
        eprintln!("SKIPPED (no pebble on PATH; apt-get install pebble): acme");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pebble = Pebble::start(&binary, dir.path());
    let root = pebble.issuing_root();
    let trusting_pebble = client(&[root]);
    let cache = dir.path().join("acme-cache");
    let target = Target::new(Backend::Sqlite, "acme").unwrap();

    let server = acme_server(&target, &pebble, &cache);
    let mut served = None;
    let obtained = wait_until(Duration::from_secs(30), || {
        served = connect(server.addr, trusting_pebble.clone()).ok();
        served.is_some()
    });
    assert!(obtained, "no certificate within 30 s: {}", server.log());
    let mut tls = served.unwrap();
    let first = tls.conn.peer_certificates().unwrap()[0].to_vec();
    assert!(get(&mut tls, "/healthz").starts_with("HTTP/1.1 200"));
    drop(tls);
    // The certificate is written to the cache after it is deployed.
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("CertCacheStore")),
        "{}",
        server.log()
    );
    server.stop();

    // A restart serves the cached certificate at once and orders nothing.
    let server = acme_server(&target, &pebble, &cache);
    let mut again = None;
    assert!(
        wait_until(Duration::from_secs(2), || {
            again = connect(server.addr, trusting_pebble.clone()).ok();
            again.is_some()
        }),
        "the cached certificate was not served at once: {}",
        server.log()
    );
    assert_eq!(
        again.unwrap().conn.peer_certificates().unwrap()[0].to_vec(),
        first
    );
    let log = server.stop();
    assert!(log.contains("DeployedCachedCert"), "{log}");
    assert!(!log.contains("DeployedNewCert"), "a new order: {log}");
}

#[test]
fn acme_startup_errors_name_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target::new(Backend::Sqlite, "acme_refused").unwrap();
    let missing = dir.path().join("missing-roots.pem");
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    common::binary::prepare(&mut command).args(common::binary::server_args(
        &target.url,
        &[
            "--acme-domains",
            "localhost",
            "--acme-ca-roots",
            missing.to_str().unwrap(),
        ],
    ));
    let output = command.stderr(Stdio::piped()).output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains("acme_ca_roots") && log.contains("missing-roots.pem"),
        "{log}"
    );
}
