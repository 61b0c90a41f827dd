//! TLS to PostgreSQL (SPEC §9) through the real binary, against a server of the test's own
//! (`common::cluster::Standalone`) with `ssl = on` and a certificate for `127.0.0.1` and
//! `localhost` signed by a CA made here with rcgen. Each `sslmode` is held to what it
//! promises: `verify-full` and `require` connect encrypted (`pg_stat_ssl` says so for
//! every connection of the binary); `verify-ca` ignores the name; a wrong CA, a wrong
//! name and a server refusing TLS each stop startup with one line naming the failed
//! check; `prefer` falls back to plain text only when the server refuses TLS, and says
//! so; the cancel of a statement past the request's deadline goes over TLS too. The
//! server refusing TLS is a proxy that answers the TLS request "no" for the test
//! server, as a PostgreSQL with `ssl = off` does.
//!
//! One server for all the cases, so the whole file takes a few seconds. Without the
//! PostgreSQL server binaries the test says SKIPPED; with `CI=true` it fails.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use common::binary::{STARTUP, Server, WaitWithin, post_sale, prepare, server_args, wait_until};
use common::cluster::{Node, Standalone};
use common::{HeldInsert, some_session_waits_for_a_lock};
use hooklatch::config::DatabaseUrl;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// The CA the server's certificate chains to, another that it does not, and the
/// server's certificate (for `127.0.0.1` and `localhost`) and key.
struct Pki {
    dir: tempfile::TempDir,
    server_cert: String,
    server_key: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ca_key) = new_ca("hooklatch test CA");
        let (other, _) = new_ca("some other CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("other-ca.pem"), other.pem()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "postgres test server");
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        Pki {
            dir,
            server_cert: cert.pem(),
            server_key: key.serialize_pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn new_ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

#[test]
fn each_sslmode_connects_or_stops_startup_as_it_promises() {
    let pki = Pki::new();
    let Some(server) = Standalone::start(
        "postgres_tls::each_sslmode_connects_or_stops_startup_as_it_promises",
        &[
            ("server.crt", pki.server_cert.as_bytes()),
            ("server.key", pki.server_key.as_bytes()),
        ],
        "ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
    ) else {
        return;
    };
    let pg = &server.node;
    pg.with_client(|c| c.batch_execute("CREATE DATABASE hooklatch").unwrap());
    let port = pg.port;
    let ca = pki.path("ca.pem");
    let ca = ca.display();
    let other = pki.path("other-ca.pem");
    let other = other.display();
    let plain = refusing_tls(port);

    // verify-full by IP address: the certificate names 127.0.0.1.
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/hooklatch?sslmode=verify-full&sslrootcert={ca}&application_name=full"
    );
    let server = serving(&url, "tls-full");
    assert_eq!(encrypted(pg, "full", &server), (true, 3));
    server.stop();

    // verify-full by name, and `require` with no CA at all.
    let url = format!(
        "postgres://postgres@localhost:{port}/hooklatch?sslmode=verify-full&sslrootcert={ca}&application_name=full-name"
    );
    serving(&url, "tls-full-name").stop();
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/hooklatch?sslmode=require&application_name=require"
    );
    let server = serving(&url, "tls-require");
    assert_eq!(encrypted(pg, "require", &server), (true, 3));
    server.stop();

    // The certificate does not name wrong.example: verify-ca does not care, verify-full
    // refuses, naming the name. hostaddr makes the connection go to this server anyway.
    let wrong_name = format!(
        "postgres://postgres@wrong.example:{port}/hooklatch?hostaddr=127.0.0.1&sslrootcert={ca}"
    );
    migrates(&format!("{wrong_name}&sslmode=verify-ca"));
    stops_startup(
        &format!("{wrong_name}&sslmode=verify-full"),
        &format!(
            "PostgreSQL at wrong.example:{port} (127.0.0.1): certificate not valid for name \"wrong.example\": it is for 127.0.0.1, localhost (sslmode=verify-full)"
        ),
    );

    // Signed by a CA that is not the one given.
    for mode in ["verify-ca", "verify-full", "require"] {
        stops_startup(
            &format!(
                "postgres://postgres@127.0.0.1:{port}/hooklatch?sslmode={mode}&sslrootcert={other}"
            ),
            &format!(
                "PostgreSQL at 127.0.0.1:{port}: certificate not signed by a CA in sslrootcert {other} (sslmode={mode})"
            ),
        );
    }

    // A server refusing TLS: require stops, prefer connects in plain text and says so.
    stops_startup(
        &format!("postgres://postgres@127.0.0.1:{plain}/hooklatch?sslmode=require"),
        &format!("PostgreSQL at 127.0.0.1:{plain}: the server refuses TLS (sslmode=require)"),
    );
    let url = format!(
        "postgres://postgres@127.0.0.1:{plain}/hooklatch?sslmode=prefer&application_name=prefer-plain"
    );
    let server = serving(&url, "tls-prefer-plain");
    assert_eq!(encrypted(pg, "prefer-plain", &server), (false, 3));
    let log = server.stop();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("refused TLS")).collect();
    assert_eq!(
        warnings.len(),
        1,
        "one warning, not one per connection: {log}"
    );
    assert!(
        warnings[0].contains("WARN")
            && warnings[0].contains(&format!("PostgreSQL at 127.0.0.1:{plain} refused TLS")),
        "{log}"
    );

    // prefer against a server with TLS: encrypted, and nothing to warn about.
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/hooklatch?sslmode=prefer&application_name=prefer"
    );
    let server = serving(&url, "tls-prefer");
    assert_eq!(encrypted(pg, "prefer", &server), (true, 3));
    let log = server.stop();
    assert!(!log.contains("refused TLS"), "{log}");

    // Without sslmode: plain text, as before (hooklatch's default is `disable`).
    let url = format!("postgres://postgres@127.0.0.1:{port}/hooklatch?application_name=default");
    let server = serving(&url, "tls-default");
    assert_eq!(encrypted(pg, "default", &server), (false, 3));
    server.stop();

    // The cancel sent at a request's deadline goes over TLS with the same checks: the
    // delivery waits for another client's insert of its id until the store timeout,
    // gets a 503, and its statement is cancelled on the server. Without prepared
    // statements no statement_timeout is set, so only that cancel ends the wait.
    let url = format!(
        "postgres://postgres@127.0.0.1:{port}/hooklatch?sslmode=verify-full&sslrootcert={ca}&application_name=cancel"
    );
    let server = Server::start(
        &url,
        &[
            "--pool-size",
            "3",
            "--store-timeout",
            "1",
            "--pg-prepared-statements=false",
        ],
    );
    let plain_url = format!("postgres://postgres@127.0.0.1:{port}/hooklatch");
    let held = HeldInsert::start(
        &DatabaseUrl::Postgres(plain_url.clone()),
        "refersion",
        "tls-cancel",
    );
    let addr = server.addr;
    let delivery = thread::spawn(move || post_sale(addr, "tls-cancel"));
    assert!(
        some_session_waits_for_a_lock(&plain_url, STARTUP),
        "the delivery never waited: {}",
        server.log()
    );
    assert_eq!(delivery.join().unwrap().unwrap().status, 503);
    assert!(
        wait_until(STARTUP, || !some_session_waits_for_a_lock(
            &plain_url,
            Duration::ZERO
        )),
        "the statement was not cancelled: {}",
        server.log()
    );
    held.finish(false);
    server.stop();

    // A missing sslrootcert file is named before anything connects.
    let missing = pki.path("missing.pem");
    stops_startup(
        &format!(
            "postgres://postgres@127.0.0.1:{port}/hooklatch?sslmode=verify-full&sslrootcert={}",
            missing.display()
        ),
        &format!("sslrootcert {}", missing.display()),
    );
}

/// The binary on `url` with a pool of 3, having answered one sale 200 (so it was
/// committed over one of those connections).
fn serving(url: &str, event_id: &str) -> Server {
    let server = Server::start(url, &["--pool-size", "3"]);
    let answer = post_sale(server.addr, event_id).unwrap();
    assert_eq!(answer.status, 200, "{}: {}", answer.body, server.log());
    server
}

/// Whether the connections named `application_name` are all encrypted (`pg_stat_ssl`),
/// and how many there are, once all three of `server`'s pool are open.
fn encrypted(pg: &Node, application_name: &str, server: &Server) -> (bool, i64) {
    let all_open = wait_until(STARTUP, || {
        pg.with_client(|c| {
            c.query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&application_name],
            )
            .unwrap()
            .get::<_, i64>(0)
                == 3
        })
    });
    assert!(all_open, "the pool of 3 did not open: {}", server.log());
    let row = pg.with_client(|c| {
        c.query_one(
            "SELECT bool_and(s.ssl), count(*), bool_and(s.ssl = (s.version IS NOT NULL))
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.application_name = $1",
            &[&application_name],
        )
        .unwrap()
    });
    assert!(
        row.get::<_, bool>(2),
        "a TLS version exactly for the encrypted ones"
    );
    (row.get(0), row.get(1))
}

/// `hooklatch migrate` on `url` succeeds.
fn migrates(url: &str) {
    let output = hooklatch(&["migrate", "--database-url", url])
        .wait_with_output_within(STARTUP)
        .unwrap_or_else(|_| panic!("migrate did not finish: {url}"));
    assert!(output.0.success(), "{url}: {}", output.1);
}

/// `hooklatch serve` on `url` exits 1 at startup with exactly one `hooklatch:` line,
/// holding `expect`, and no panic.
fn stops_startup(url: &str, expect: &str) {
    let args = server_args(url, &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Ok((status, log)) = hooklatch(&args).wait_with_output_within(STARTUP) else {
        panic!("started, or never stopped, on {url}");
    };
    assert_eq!(status.code(), Some(1), "{log}");
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with("hooklatch:"))
        .collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert!(errors[0].contains(expect), "expected {expect:?} in:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
}

fn hooklatch(args: &[&str]) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    command.args(args);
    prepare(&mut command).stderr(Stdio::piped());
    command.spawn().expect("spawn hooklatch")
}

/// A server that refuses TLS, as PostgreSQL with `ssl = off` does: a proxy to the test
/// server on `port` that answers the client's TLS request with "N" and then passes the
/// plain-text session through. Returns its port; it runs until the test ends.
fn refusing_tls(port: u16) -> u16 {
    const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let own = listener.local_addr().unwrap().port();
    let upstream = SocketAddr::from(([127, 0, 0, 1], port));
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            thread::spawn(move || {
                let mut first = [0u8; 8];
                if client.read_exact(&mut first).is_err() {
                    return;
                }
                let Ok(mut server) = TcpStream::connect(upstream) else {
                    return;
                };
                let sent = if first == SSL_REQUEST {
                    client.write_all(b"N")
                } else {
                    server.write_all(&first)
                };
                if sent.is_err() {
                    return;
                }
                pipe(client, server);
            });
        }
    });
    own
}

/// Copies both ways until either side closes.
fn pipe(client: TcpStream, server: TcpStream) {
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let back = thread::spawn(move || {
        let (mut server, mut client) = (server, client);
        let _ = std::io::copy(&mut server, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Both);
    });
    let _ = std::io::copy(&mut client_in, &mut server_out);
    let _ = server_out.shutdown(std::net::Shutdown::Both);
    let _ = back.join();
}
