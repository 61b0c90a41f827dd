//! HTTPS from certificate files (SPEC §9), against the real binary: certificates made
//! by rcgen in a temporary directory, a rustls client that trusts only the test CA.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::binary::{Answer, Server, Target, WaitWithin, parse_answer, server_args, wait_until};
use common::{Backend, sale};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A CA, and leaf certificates for `localhost` signed by it, written as PEM files.
struct Pki {
    dir: tempfile::TempDir,
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let ca = params.self_signed(&ca_key).unwrap();
        Pki {
            dir: tempfile::tempdir().unwrap(),
            ca,
            ca_key,
        }
    }

    /// Writes `<stem>.crt` and `<stem>.key` for `localhost`, with `common_name` to tell
    /// certificates apart; returns both paths.
    fn leaf(&self, stem: &str, common_name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let cert_path = self.dir.path().join(format!("{stem}.crt"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let mut config = ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, config: Arc<ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut tls = StreamOwned::new(ClientConnection::new(config, name).unwrap(), tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).unwrap();
    }
    tls
}

/// The certificate the server showed.
fn served(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// The certificate in a PEM file.
fn der_of(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// One HTTP/1.1 request on a connection that stays open; reads exactly one answer.
fn request(tls: &mut Tls, method: &str, path: &str, body: &str) -> Answer {
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(body.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).unwrap();
    raw.extend(body);
    parse_answer(&raw).unwrap()
}

fn https_server(target: &Target, cert: &Path, key: &Path) -> Server {
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    Server::start(&target.url, &["--tls-cert", cert, "--tls-key", key])
}

#[test]
fn https_serves_the_seed_request_and_http2_by_alpn() {
    let pki = Pki::new("test CA");
    let (cert, key) = pki.leaf("server", "first");
    let target = Target::new(Backend::Sqlite, "https_seed").unwrap();
    let server = https_server(&target, &cert, &key);

    let mut tls = connect(server.addr, pki.client(&[b"http/1.1"]));
    let answer = request(
        &mut tls,
        "POST",
        "/webhooks/refersion",
        &sale("tls-1", "3.25"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["status"], "processed");
    let again = request(
        &mut tls,
        "POST",
        "/webhooks/refersion",
        &sale("tls-1", "3.25"),
    );
    assert_eq!(again.status, 202, "a duplicate on the same connection");

    // HTTP/2 by ALPN: the server picks h2 and answers the preface with its SETTINGS.
    let mut h2 = connect(server.addr, pki.client(&[b"h2", b"http/1.1"]));
    assert_eq!(h2.conn.alpn_protocol(), Some(&b"h2"[..]));
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    h2.flush().unwrap();
    let mut frame = [0u8; 9];
    h2.read_exact(&mut frame).unwrap();
    assert_eq!(
        frame[3], 0x4,
        "the first frame an HTTP/2 server sends is SETTINGS"
    );
    // A silent HTTP/2 client holds shutdown up to the grace period; this one leaves.
    drop((tls, h2));
    server.stop();
}

#[test]
fn plain_http_on_the_https_port_gets_no_answer() {
    let pki = Pki::new("test CA");
    let (cert, key) = pki.leaf("server", "first");
    let target = Target::new(Backend::Sqlite, "https_plain").unwrap();
    let server = https_server(&target, &cert, &key);
    let plain = common::binary::post_sale(server.addr, "plain-1");
    // Either no HTTP answer at all (the handshake failed) or a refusal; never a 2xx.
    if let Ok(answer) = plain {
        assert!(
            !(200..300).contains(&answer.status),
            "plain HTTP got {}",
            answer.status
        );
    }
    // Nothing was stored: the next HTTPS delivery of the same id is new.
    let mut tls = connect(server.addr, pki.client(&[]));
    let answer = request(
        &mut tls,
        "POST",
        "/webhooks/refersion",
        &sale("plain-1", "3.25"),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    server.stop();
}

#[test]
fn sighup_reloads_for_new_connections_while_an_open_one_keeps_working() {
    let pki = Pki::new("test CA");
    let (cert, key) = pki.leaf("server", "first");
    let target = Target::new(Backend::Sqlite, "https_reload").unwrap();
    let server = https_server(&target, &cert, &key);
    let first = der_of(&cert);
    let mut open = connect(server.addr, pki.client(&[]));
    assert_eq!(served(&open), first);

    // A bad new pair (a key that is not the certificate's): logged, old pair kept.
    let (_, other_key) = pki.leaf("other", "other");
    std::fs::copy(&other_key, &key).unwrap();
    server.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("still serving the previous certificate")),
        "{}",
        server.log()
    );
    assert!(server.log().contains("does not match"), "{}", server.log());
    assert_eq!(served(&connect(server.addr, pki.client(&[]))), first);

    // A good new pair: new connections see it.
    let (new_cert, new_key) = pki.leaf("renewed", "second");
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    server.signal("HUP");
    assert!(
        wait_until(Duration::from_secs(10), || server
            .log()
            .contains("certificate and key reloaded")),
        "{}",
        server.log()
    );
    assert_eq!(
        served(&connect(server.addr, pki.client(&[]))),
        der_of(&new_cert)
    );

    // The connection opened before both reloads still works.
    let answer = request(&mut open, "GET", "/healthz", "");
    assert_eq!(answer.status, 200);
    server.stop();
}

/// Starts the binary with `extra` and expects it to exit 1 with one line containing
/// each of `expected`.
fn refuses_to_start(extra: &[&str], expected: &[&str]) {
    let target = Target::new(Backend::Sqlite, "https_refused").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    common::binary::prepare(&mut command)
        .args(server_args(&target.url, extra))
        .stderr(Stdio::piped());
    let child = command.spawn().unwrap();
    let (status, log) = match child.wait_with_output_within(Duration::from_secs(20)) {
        Ok(done) => done,
        Err(running) => panic!("started anyway: {:?}", running.address),
    };
    assert_eq!(status.code(), Some(1), "{log}");
    let last = log
        .lines()
        .rev()
        .find(|l| l.starts_with("hooklatch: "))
        .unwrap_or_else(|| {
            panic!("no one-line error: {log}");
        });
    for part in expected {
        assert!(last.contains(part), "{part:?} not in {last:?}");
    }
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn each_certificate_problem_stops_startup_naming_the_file() {
    let pki = Pki::new("test CA");
    let (cert, key) = pki.leaf("server", "first");
    let (_, other_key) = pki.leaf("other", "other");
    let missing = pki.dir.path().join("missing.pem");
    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let (cert, key, other_key, missing, garbage) =
        (s(&cert), s(&key), s(&other_key), s(&missing), s(&garbage));

    refuses_to_start(&["--tls-cert", &cert], &["tls_key is not", &cert]);
    refuses_to_start(&["--tls-key", &key], &["tls_cert is not", &key]);
    refuses_to_start(
        &["--tls-cert", &missing, "--tls-key", &key],
        &["tls_cert", &missing, "cannot read"],
    );
    refuses_to_start(
        &["--tls-cert", &cert, "--tls-key", &missing],
        &["tls_key", &missing, "cannot read"],
    );
    refuses_to_start(
        &["--tls-cert", &garbage, "--tls-key", &key],
        &["tls_cert", &garbage],
    );
    refuses_to_start(
        &["--tls-cert", &cert, "--tls-key", &other_key],
        &["does not match", &other_key, &cert],
    );
    refuses_to_start(
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--acme-domains",
            "example.com",
        ],
        &["acme_domains", "tls_cert"],
    );
}

#[test]
fn the_console_cookie_is_secure_over_https() {
    let pki = Pki::new("test CA");
    let (cert, key) = pki.leaf("server", "first");
    let target = Target::new(Backend::Sqlite, "https_cookie").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    command
        .args(server_args(
            &target.url,
            &[
                "--tls-cert",
                cert.to_str().unwrap(),
                "--tls-key",
                key.to_str().unwrap(),
            ],
        ))
        .env("HOOKLATCH_ADMIN_TOKEN", common::ADMIN_TOKEN);
    let server = Server::spawn(command);
    let mut tls = connect(server.addr, pki.client(&[]));
    let form = format!("token={}", common::ADMIN_TOKEN);
    let head = format!(
        "POST /admin/login HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: https://localhost:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len(),
        port = server.addr.port()
    );
    tls.write_all(head.as_bytes()).unwrap();
    tls.flush().unwrap();
    let mut raw = vec![0u8; 4096];
    let n = tls.read(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw[..n]).to_string();
    let cookie = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {text}"));
    assert!(cookie.contains("; Secure"), "{cookie}");
    server.stop();
}
