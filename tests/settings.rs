//! Settings as a user meets them: secure by default off loopback (over HTTP, on both
//! stores), startup errors from the real binary as one line, and logs from the real
//! binary that never carry a secret, a token, a body or a password.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Backend, TestDb, Totals, assert_one_line_failure, post, sale};
use hooklatch::config::SourceSettings;
use hooklatch::sources::Preset;

contract!(
    off_loopback_a_source_without_a_secret_is_401_and_stores_nothing,
    off_loopback_an_allowed_or_signed_source_is_accepted,
    on_loopback_unsigned_deliveries_keep_the_quick_start,
);

const EXPOSED: &str = "0.0.0.0:8000";

async fn off_loopback_a_source_without_a_secret_is_401_and_stores_nothing(db: &TestDb) {
    let mut config = db.config();
    config.listen = EXPOSED.parse().unwrap();
    let app = db.app_with(&config);
    let cases = [
        ("/webhooks/refersion", sale("ref_unsigned_1", "10.00")),
        ("/webhooks/acme", r#"{"id":"acme-1"}"#.to_owned()),
        ("/webhooks/standard", r#"{"id":"std-1"}"#.to_owned()),
    ];
    for (path, body) in &cases {
        let reply = post(&app, path, &[], body).await;
        assert_eq!(reply.status, 401, "{path}: {:?}", reply.body);
        assert_eq!(reply.body["error"], "invalid_signature");
        assert_eq!(reply.body["reason"], "no_secret_configured");
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    assert_eq!(db.totals(), Totals::default(), "nothing stored");
}

async fn off_loopback_an_allowed_or_signed_source_is_accepted(db: &TestDb) {
    let mut config = db.config();
    config.listen = EXPOSED.parse().unwrap();
    let mut open = SourceSettings::new(Preset::Standard, Vec::new());
    open.allow_unsigned = true;
    config.sources.insert("open", open);
    config.sources.insert(
        "refersion",
        SourceSettings::new(Preset::Refersion, vec!["k".into()]),
    );
    let app = db.app_with(&config);

    let allowed = post(&app, "/webhooks/open", &[], r#"{"id":"open-1"}"#).await;
    assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    let body = sale("ref_signed_1", "5.00");
    let signature = common::base64_hmac("k", body.as_bytes());
    let signed = post(
        &app,
        "/webhooks/refersion",
        &[("Refersion-Signature", &signature)],
        &body,
    )
    .await;
    assert_eq!(signed.status, 200, "{:?}", signed.body);
    let other = post(&app, "/webhooks/acme", &[], r#"{"id":"acme-1"}"#).await;
    assert_eq!(other.body["reason"], "no_secret_configured");

    // HOOKLATCH_ALLOW_UNSIGNED: every source without a secret.
    config.allow_unsigned = true;
    let app = db.app_with(&config);
    let everyone = post(&app, "/webhooks/acme", &[], r#"{"id":"acme-2"}"#).await;
    assert_eq!(everyone.status, 200, "{:?}", everyone.body);
    let still_signed = post(
        &app,
        "/webhooks/refersion",
        &[],
        &sale("ref_unsigned_2", "1.00"),
    )
    .await;
    assert_eq!(
        still_signed.status, 401,
        "a secret is still required where one is set"
    );
    assert_eq!(db.totals().events, 3);
}

async fn on_loopback_unsigned_deliveries_keep_the_quick_start(db: &TestDb) {
    let app = db.app();
    let reply = post(
        &app,
        "/webhooks/refersion",
        &[],
        &sale("ref_local_1", "10.00"),
    )
    .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(db.totals().conversions, 1);
}

fn hooklatch() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    command
        .env_remove("DATABASE_URL")
        .env_remove("HOOKLATCH_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// Runs the binary and expects a one-line startup failure.
fn assert_fails(command: &mut Command, expect: &str) -> String {
    assert_one_line_failure(command.output().unwrap(), expect)
}

#[test]
fn bad_settings_stop_the_binary_with_one_line() {
    let memory = ["migrate", "--database-url", "sqlite::memory:"];
    // A zero connect timeout used to panic inside r2d2.
    assert_fails(
        hooklatch().args(memory).args(["--connect-timeout", "0"]),
        "positive",
    );
    assert_fails(
        hooklatch().args(memory).env("HOOKLATCH_STORE_TIMEOUT", "0"),
        "HOOKLATCH_STORE_TIMEOUT",
    );
    assert_fails(
        hooklatch()
            .args(memory)
            .env("HOOKLATCH_SECRET_REFERSION", ""),
        "HOOKLATCH_SECRET_REFERSION",
    );
    assert_fails(
        hooklatch()
            .args(memory)
            .env("HOOKLATCH_SECRET_ACME", "whsec_!!!"),
        "HOOKLATCH_SECRET_ACME",
    );
    let token = assert_fails(
        hooklatch()
            .args(memory)
            .env("HOOKLATCH_ADMIN_TOKEN", "short-token-x"),
        "16 characters",
    );
    assert!(!token.contains("short-token-x"), "{token}");
    assert_fails(
        hooklatch().args(memory).args(["--no-such-flag"]),
        "--no-such-flag",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("h.toml");
    std::fs::write(&file, "[sources.refersion]\nsecrets = []\n").unwrap();
    assert_fails(
        hooklatch().args(memory).env("HOOKLATCH_CONFIG", &file),
        "[sources.refersion]",
    );
}

#[test]
fn no_spelling_of_a_database_password_reaches_stderr() {
    for url in [
        "postgres://u:Hunter2pw@127.0.0.1:1/x",
        "postgres://u@127.0.0.1:1/x?password=Hunter2pw",
        "postgres://u@127.0.0.1:1/x?sslmode=disable&PASSWORD=Hunter2pw",
        "host=127.0.0.1 password=Hunter2pw",
    ] {
        let stderr = assert_fails(
            hooklatch()
                .args(["migrate", "--connect-timeout", "1"])
                .env("DATABASE_URL", url),
            "",
        );
        assert!(!stderr.contains("Hunter2pw"), "{url}: {stderr}");
    }
    // A server that starts and logs its store (trust authentication ignores the password).
    let Some(db) = TestDb::fresh(Backend::Postgres, "log_password") else {
        return;
    };
    let hooklatch::config::DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let with_password = url.replacen("postgres://postgres@", "postgres://postgres:Hunter2pw@", 1)
        + "?password=Hunter2pw";
    for format in ["text", "json"] {
        let output = hooklatch()
            .args(["migrate"])
            .env("DATABASE_URL", &with_password)
            .env("HOOKLATCH_LOG_FORMAT", format)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("store ready"), "{stderr}");
        assert!(!stderr.contains("Hunter2pw"), "{stderr}");
    }
}

/// A running `hooklatch serve` whose stderr is read line by line.
struct Server {
    child: Child,
    addr: SocketAddr,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    fn start(command: &mut Command) -> Server {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            addr: "127.0.0.1:0".parse().unwrap(),
            lines,
            seen: Vec::new(),
        };
        let line = server.wait_for("hooklatch listening on");
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(['"', ' ']).next())
            .unwrap_or_else(|| panic!("no address in {line}"));
        server.addr = addr
            .parse()
            .unwrap_or_else(|_| panic!("no address in {line}"));
        server
    }

    /// The first line (from now on, or already seen) holding `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.seen.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no line with {needle:?}; got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// SIGTERM, then everything it wrote.
    fn stop(mut self) -> String {
        let status = Command::new("sh")
            .args(["-c", "kill -s TERM \"$0\"", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
        // The reader thread ends at EOF, closing the channel.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

const SOURCE_SECRET: &str = "shpss_SourceSecret0042";
const ADMIN_TOKEN: &str = "AdminToken-0123456789-xyz";
const FORWARD_KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY_MARKER: &str = "BodyMarker-7731";

fn logs_for(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut command = hooklatch();
    command
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("h.db").display()),
        )
        .env("HOOKLATCH_LOG_FORMAT", format)
        .env("HOOKLATCH_SECRET_SHOPIFY", SOURCE_SECRET)
        .env("HOOKLATCH_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HOOKLATCH_FORWARD_SECRET", FORWARD_KEY)
        .env("HOOKLATCH_FORWARD_TO_ACME", "http://127.0.0.1:9/in");
    let mut server = Server::start(&mut command);
    let addr = server.addr;
    let body = format!(r#"{{"id":"evt-1","note":"{BODY_MARKER}"}}"#);
    let signature = common::base64_hmac(SOURCE_SECRET, body.as_bytes());
    let signed = [
        ("X-Shopify-Webhook-Id", "wh-1"),
        ("X-Shopify-Hmac-Sha256", signature.as_str()),
    ];
    assert_eq!(
        common::http_post(addr, "/webhooks/shopify", &signed, &body).status,
        200
    );
    assert_eq!(
        common::http_post(addr, "/webhooks/shopify", &signed, &body).status,
        202
    );
    let wrong = common::base64_hmac("not-the-secret", body.as_bytes());
    let forged = [
        ("X-Shopify-Webhook-Id", "wh-2"),
        ("X-Shopify-Hmac-Sha256", wrong.as_str()),
    ];
    assert_eq!(
        common::http_post(addr, "/webhooks/shopify", &forged, &body).status,
        401
    );
    // A duplicate key, long: its refusal used to quote the key (issue 17 item 11).
    let key = BODY_MARKER.repeat(100);
    let invalid = format!(r#"{{"note":"{BODY_MARKER}","{key}":1,"{key}":2}}"#);
    assert_eq!(
        common::http_post(addr, "/webhooks/acme", &[], &invalid).status,
        400
    );
    assert_eq!(
        common::http_post(addr, "/webhooks/acme", &[], &body).status,
        200
    );
    server.wait_for("delivery refused");
    server.stop()
}

fn assert_clean(format: &str, logs: &str) {
    for secret in [
        SOURCE_SECRET,
        ADMIN_TOKEN,
        FORWARD_KEY,
        &FORWARD_KEY[6..],
        BODY_MARKER,
    ] {
        assert!(
            !logs.contains(secret),
            "{format} log holds {secret}:\n{logs}"
        );
    }
    assert!(
        !logs.contains("\x1b["),
        "{format}: colour escapes on a pipe:\n{logs}"
    );
}

#[test]
fn text_logs_have_one_line_per_delivery_and_nothing_secret() {
    let logs = logs_for("text");
    assert_clean("text", &logs);
    let deliveries: Vec<&str> = logs.lines().filter(|l| l.contains("delivery ")).collect();
    assert_eq!(deliveries.len(), 5, "{logs}");
    let first = deliveries[0];
    for field in [
        "source=shopify",
        "event_id=wh-1",
        "outcome=\"processed\"",
        "latency_ms=",
    ] {
        assert!(first.contains(field), "{field} in {first}");
    }
    for line in &deliveries {
        // Rounded to the microsecond: at most three decimals (issue 17 item 17).
        let value = line
            .split("latency_ms=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no latency in {line}"));
        let decimals = value.split_once('.').map_or(0, |(_, f)| f.len());
        assert!(decimals <= 3, "latency_ms={value} in {line}");
    }
    assert!(
        deliveries[1].contains("outcome=\"duplicate\""),
        "{}",
        deliveries[1]
    );
    assert!(
        deliveries[2].contains("reason=\"no_match\""),
        "{}",
        deliveries[2]
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_the_delivery_fields() {
    let logs = logs_for("json");
    assert_clean("json", &logs);
    let objects: Vec<serde_json::Value> = logs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for object in &objects {
        for key in ["timestamp", "level", "message"] {
            assert!(object.get(key).is_some(), "{key} missing in {object}");
        }
    }
    let deliveries: Vec<&serde_json::Value> = objects
        .iter()
        .filter(|o| {
            o["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("delivery "))
        })
        .collect();
    assert_eq!(deliveries.len(), 5, "{logs}");
    let first = deliveries[0];
    assert_eq!(first["source"], "shopify");
    assert_eq!(first["event_id"], "wh-1");
    assert_eq!(first["outcome"], "processed");
    assert!(first["latency_ms"].as_f64().is_some(), "{first}");
    assert_eq!(deliveries[2]["outcome"], "invalid_signature");
    let refused = deliveries[3];
    assert_eq!(refused["outcome"], "invalid_payload", "{refused}");
    let error = refused["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("duplicate key") && error.chars().count() <= 200,
        "{refused}"
    );
    assert_eq!(deliveries[2]["status"], 401);
}
