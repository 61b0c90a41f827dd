//! What one client may hold of the server (issue 17 item 9): a body trickled to the
//! admin side, idle connections past the cap, requests in flight past the cap, and
//! connections that never send a request or go silent on HTTP/2. Each test starts the
//! real server loop on a port of its own with small limits, and checks by statuses,
//! bodies and closed connections. Waits are bounded and end on the event they wait for.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    ADMIN_TOKEN, RawReply, TestDb, TestServer, fast_sqlite, parse_reply, two_worker_runtime,
};
use hooklatch::App;
use hooklatch::config::{Config, Limits};

/// Generous bound on anything that should happen within a second or two here.
const PATIENCE: Duration = Duration::from_secs(20);

/// The default settings with these limits; the admin side on.
fn app(db: &TestDb, body_timeout: Duration, limits: Limits) -> Arc<App> {
    let config = Config {
        body_timeout,
        limits,
        ..db.config()
    };
    Arc::new(App::new(db.store.clone(), &config).with_admin_token(ADMIN_TOKEN))
}

fn limits() -> Limits {
    Config::default().limits
}

/// Reads until the server closes the connection or `limit` passes; `None` on the latter.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => return Some(raw),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            // A reset is a close too.
            Err(_) => return Some(raw),
        }
    }
    None
}

fn get(addr: SocketAddr, path: &str) -> RawReply {
    common::raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        b"",
    )
}

/// A webhook request whose head is sent and whose body is held back.
fn hold(addr: SocketAddr, body: &[u8]) -> TcpStream {
    let mut held = TcpStream::connect(addr).unwrap();
    write!(
        held,
        "POST /webhooks/shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    held
}

/// Whether the server has answered (or closed) `stream` already, without waiting.
fn answered(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let answered =
        !matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).unwrap();
    answered
}

/// One keep-alive `GET /healthz` on `stream`, its whole answer read.
fn healthz_on(stream: &mut TcpStream) -> RawReply {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 1024];
    while !raw.ends_with(b"}") {
        let n = stream.read(&mut buf).expect("an answer");
        assert!(n > 0, "closed before answering");
        raw.extend_from_slice(&buf[..n]);
    }
    parse_reply(&raw)
}

// ---------------------------------------------------------------------------------------
// Bodies: the admin side has the body timeout too
// ---------------------------------------------------------------------------------------

/// A console sign-in and an API request that declare a body and then trickle it, a byte
/// at a time: each is answered 408 (or cut off) at the body timeout, and other clients
/// are served meanwhile. Before, the admin side read bodies with no deadline at all.
#[test]
fn an_admin_body_trickled_a_byte_at_a_time_is_cut_off_at_the_body_timeout() {
    let db = fast_sqlite("admin_loris");
    let rt = two_worker_runtime();
    let server = rt.block_on(TestServer::start(app(
        &db,
        Duration::from_secs(1),
        limits(),
    )));
    let body = b"token=a-token-that-is-long-enough-but-arrives-far-too-slowly-for-anyone";
    for (path, auth) in [
        ("/admin/login", String::new()),
        (
            "/admin/api/forwarding/shop/pause",
            format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
        ),
    ] {
        let mut stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        let started = Instant::now();
        let mut raw = Vec::new();
        let mut closed = false;
        // A byte now and then: each comes well within any per-read timeout, so only a
        // deadline on the whole body ends the request before it is complete.
        for byte in &body[..body.len() - 1] {
            if stream.write_all(&[*byte]).is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {}
            }
            // The server answers others while this request waits for its body.
            if raw.is_empty() && started.elapsed() < Duration::from_millis(500) {
                assert_eq!(get(server.addr, "/healthz").status, 200);
            }
        }
        if !closed {
            let rest = read_until_closed(&mut stream, PATIENCE)
                .unwrap_or_else(|| panic!("{path}: the trickled request is still open"));
            raw.extend_from_slice(&rest);
        }
        assert!(
            !raw.is_empty() || closed,
            "{path}: the body was never complete, yet nothing ended the request"
        );
        if !raw.is_empty() {
            let reply = parse_reply(&raw);
            assert_eq!(reply.status, 408, "{path}: {}", reply.body);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "{path}: held for {:?}",
            started.elapsed()
        );
    }
    assert_eq!(get(server.addr, "/healthz").status, 200);
    rt.block_on(server.stop());
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

/// Two connections held open (idle keep-alive) fill a cap of two: a third client's
/// request waits, unanswered, and is served as soon as one of the two closes.
#[test]
fn past_the_connection_cap_a_new_client_waits_until_a_connection_closes() {
    let db = fast_sqlite("connection_cap");
    let rt = two_worker_runtime();
    let server = rt.block_on(TestServer::start(app(
        &db,
        Duration::from_secs(60),
        Limits {
            max_connections: 2,
            ..limits()
        },
    )));
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut stream = TcpStream::connect(server.addr).unwrap();
            assert_eq!(healthz_on(&mut stream).status, 200);
            stream
        })
        .collect();

    let mut third = TcpStream::connect(server.addr).unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 1024];
    match third.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("served past the cap of 2 connections: {other:?}"),
    }

    drop(held.pop());
    let raw = read_until_closed(&mut third, PATIENCE).expect("served once a slot was free");
    assert_eq!(parse_reply(&raw).status, 200);
    // The one still held was never disturbed.
    assert_eq!(healthz_on(&mut held[0]).status, 200);
    rt.block_on(server.stop());
}

/// A connection that never sends a byte holds its slot for no longer than the body
/// timeout. Before, the server waited for its first bytes (to tell HTTP/1 from HTTP/2)
/// with no deadline, so such clients could fill the connection cap for ever.
#[test]
fn a_connection_that_never_sends_a_request_is_closed_at_the_body_timeout() {
    let db = fast_sqlite("silent_connection");
    let rt = two_worker_runtime();
    let server = rt.block_on(TestServer::start(app(
        &db,
        Duration::from_secs(1),
        limits(),
    )));
    let mut silent = TcpStream::connect(server.addr).unwrap();
    let mut half = TcpStream::connect(server.addr).unwrap();
    // The first bytes of the HTTP/2 preface: the server cannot yet tell the protocol.
    half.write_all(b"PRI * HTTP").unwrap();
    assert!(
        read_until_closed(&mut silent, PATIENCE).is_some(),
        "a connection that sent nothing is still open"
    );
    assert!(
        read_until_closed(&mut half, PATIENCE).is_some(),
        "a connection that sent part of a preface is still open"
    );
    assert_eq!(get(server.addr, "/healthz").status, 200);
    rt.block_on(server.stop());
}

// ---------------------------------------------------------------------------------------
// Requests in flight
// ---------------------------------------------------------------------------------------

/// With one request in flight allowed and one held (its body not yet sent), another
/// request is answered 503 with Retry-After and the JSON error at once; /healthz still
/// answers; once the held request finishes, requests are served again.
#[test]
fn past_the_request_cap_a_request_gets_503_with_retry_after() {
    let db = fast_sqlite("request_cap");
    let rt = two_worker_runtime();
    let server = rt.block_on(TestServer::start(app(
        &db,
        Duration::from_secs(60),
        Limits {
            max_requests: 1,
            ..limits()
        },
    )));
    let body = br#"{"id":"held-open"}"#;
    let mut held = hold(server.addr, body);

    // The held request takes the one slot as soon as its head is read. Each probe takes
    // it too, for a moment: a head read during a probe is refused (503) at once, which
    // answers and closes the held connection. Then it is sent again.
    let deadline = Instant::now() + PATIENCE;
    let refused = loop {
        let reply = get(server.addr, "/readyz");
        if reply.status == 503 {
            break reply;
        }
        assert_eq!(reply.status, 200, "{}", reply.body);
        if answered(&held) {
            held = hold(server.addr, body);
        }
        assert!(Instant::now() < deadline, "never refused past the cap");
    };
    assert_eq!(
        refused.header("retry-after"),
        Some("1"),
        "{:?}",
        refused.headers
    );
    assert_eq!(refused.header("content-type"), Some("application/json"));
    assert_eq!(refused.json()["error"], "overloaded");
    assert_eq!(
        get(server.addr, "/healthz").status,
        200,
        "liveness is exempt"
    );

    held.write_all(body).unwrap();
    let raw = read_until_closed(&mut held, PATIENCE).expect("the held request finished");
    assert_eq!(parse_reply(&raw).status, 200);
    assert_eq!(
        get(server.addr, "/readyz").status,
        200,
        "the slot is free again"
    );
    rt.block_on(server.stop());
}

// ---------------------------------------------------------------------------------------
// HTTP/2
// ---------------------------------------------------------------------------------------

/// HTTP/2 with prior knowledge: the preface and an empty SETTINGS frame, then nothing,
/// not even the acknowledgements a live client sends. The server pings after the
/// keep-alive interval and, with no answer within the keep-alive timeout, closes the
/// connection, long before the body timeout (60 s here) could.
#[test]
fn an_http2_connection_that_goes_silent_is_pinged_then_closed() {
    let db = fast_sqlite("h2_silent");
    let rt = two_worker_runtime();
    let server = rt.block_on(TestServer::start(app(
        &db,
        Duration::from_secs(60),
        Limits {
            http2_keepalive_interval: Duration::from_secs(1),
            http2_keepalive_timeout: Duration::from_secs(1),
            ..limits()
        },
    )));
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let raw =
        read_until_closed(&mut stream, PATIENCE).expect("a silent HTTP/2 connection is still open");
    let frames = frame_types(&raw);
    assert!(frames.contains(&PING), "no keep-alive ping: {frames:?}");
    assert_eq!(get(server.addr, "/healthz").status, 200);
    rt.block_on(server.stop());
}

const PING: u8 = 0x6;

/// The type of each HTTP/2 frame in `raw` (9-byte headers: length, type, flags, stream).
fn frame_types(raw: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = raw;
    while rest.len() >= 9 {
        let length = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        types.push(rest[3]);
        rest = rest.get(9 + length..).unwrap_or_default();
    }
    types
}
