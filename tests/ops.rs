//! Operating hooklatch, through the real binary: `hooklatch backup` while a server keeps
//! writing, restoring by swapping the file, `--version`, and the systemd unit in
//! `deploy/`.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::Backend;
use common::binary::{Server, Target, post_sale, prepare, wait_until};
use rusqlite::OpenFlags;

/// `hooklatch backup PATH` against `database_url`, waited for.
fn backup(database_url: &str, path: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
    prepare(&mut command)
        .args(["backup", "--database-url", database_url])
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run hooklatch backup")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one `hooklatch: …` line of a failed command, after checking it is the only line.
fn one_line_failure(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].starts_with("hooklatch: "), "{stderr}");
    lines[0].to_owned()
}

/// The event ids in a SQLite file, read without changing it.
fn event_ids_in(path: &Path) -> HashSet<String> {
    let conn = rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the copy opens");
    let mut stmt = conn
        .prepare("SELECT external_event_id FROM webhook_events")
        .unwrap();
    stmt.query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn sqlite_target(test: &str) -> (Target, PathBuf) {
    let target = Target::new(Backend::Sqlite, test).expect("SQLite is always available");
    let path = target.sqlite.as_ref().unwrap().1.clone();
    (target, path)
}

/// A few clients sending new sales until stopped; each acknowledged id comes back with
/// the moment its 200 was read.
struct Stream {
    stop: Arc<AtomicBool>,
    clients: Vec<thread::JoinHandle<Vec<(String, Instant)>>>,
}

impl Stream {
    fn start(addr: std::net::SocketAddr, clients: usize) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let stop = stop.clone();
                thread::spawn(move || {
                    let mut acked = Vec::new();
                    for seq in 0usize.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let id = format!("stream-{client}-{seq}");
                        let answer = post_sale(addr, &id).unwrap_or_else(|e| panic!("{id}: {e}"));
                        assert_eq!(answer.status, 200, "{id}: {}", answer.body);
                        acked.push((id, Instant::now()));
                    }
                    acked
                })
            })
            .collect();
        Stream { stop, clients }
    }

    /// Stops every client after its current delivery; returns what was acknowledged.
    fn finish(self) -> Vec<(String, Instant)> {
        self.stop.store(true, Ordering::SeqCst);
        self.clients
            .into_iter()
            .flat_map(|c| c.join().expect("client"))
            .collect()
    }
}

#[test]
fn a_backup_taken_under_a_stream_of_deliveries_is_intact_and_holds_every_acknowledged_event() {
    let (target, db_path) = sqlite_target("backup_stream");
    let server = Server::start(&target.url, &[]);
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");

    let stream = Stream::start(server.addr, 4);
    // Enough rows that the copy has many pages, and deliveries on both sides of it.
    let warm = wait_until(Duration::from_secs(60), || db_rows(&db_path) >= 300);
    assert!(warm, "the stream never reached 300 events");
    let began = Instant::now();
    let output = backup(&target.url, &copy);
    let ended = Instant::now();
    // The server goes on acknowledging after the copy; the stream proves it below.
    let after = wait_until(Duration::from_secs(60), || db_rows(&db_path) >= 330);
    let acked = stream.finish();
    assert!(after, "the server stopped acknowledging after the backup");

    assert!(output.status.success(), "{output:?}");
    let stdout = text(&output.stdout);
    let size = std::fs::metadata(&copy).expect("the copy exists").len();
    assert_eq!(
        stdout.trim(),
        format!(
            "backup written to {}: {size} bytes, integrity_check ok",
            copy.display()
        )
    );

    let conn = rusqlite::Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("the copy opens");
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a backup is one self-contained file");
    // One committed state: no event without its conversion, no conversion without its event.
    let (events, conversions, linked): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT count(*) FROM webhook_events), (SELECT count(*) FROM conversions), \
             (SELECT count(*) FROM webhook_events e JOIN conversions c ON c.id = e.conversion_id)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((events, conversions), (linked, linked));
    drop(conn);

    let in_copy = event_ids_in(&copy);
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, at)| *at < began)
        .map(|(id, _)| id)
        .collect();
    // 300 rows were committed before the backup began; each of the 4 clients may have had
    // one of them committed but its answer still on the way.
    assert!(before.len() >= 296, "{} acknowledged before", before.len());
    for id in &before {
        assert!(
            in_copy.contains(*id),
            "{id} was acknowledged before the backup began"
        );
    }
    let later = acked.iter().filter(|(_, at)| *at > ended).count();
    assert!(later > 0, "no delivery was acknowledged after the backup");
    // Nothing in the copy that the server did not commit.
    let all: HashSet<&String> = acked.iter().map(|(id, _)| id).collect();
    let unknown: Vec<&String> = in_copy.iter().filter(|id| !all.contains(id)).collect();
    assert!(unknown.is_empty(), "{unknown:?}");

    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
}

/// Rows in the live database, read as another process would.
fn db_rows(path: &Path) -> i64 {
    rusqlite::Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM webhook_events", [], |r| r.get(0)))
        .unwrap_or(0)
}

#[test]
fn restoring_is_stopping_the_server_and_swapping_the_file() {
    let (target, db_path) = sqlite_target("restore");
    let server = Server::start(&target.url, &[]);
    let mut kept = Vec::new();
    for i in 0..5 {
        let answer = post_sale(server.addr, &format!("kept-{i}")).unwrap();
        assert_eq!(answer.status, 200, "{}", answer.body);
        kept.push(answer.json());
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("hooklatch-backup.db");
    let output = backup(&target.url, &copy);
    assert!(output.status.success(), "{output:?}");
    let lost = post_sale(server.addr, "after-the-backup").unwrap();
    assert_eq!(lost.status, 200);
    server.stop();

    // The README's restore: stop, put the copy in place of the file, drop the old
    // WAL files if any are left, start.
    std::fs::rename(&copy, &db_path).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut name = db_path.clone().into_os_string();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
    let server = Server::start(&target.url, &[]);
    for (i, original) in kept.iter().enumerate() {
        let answer = post_sale(server.addr, &format!("kept-{i}")).unwrap();
        assert_eq!(
            answer.status, 202,
            "kept-{i} is in the backup: {}",
            answer.body
        );
        assert_eq!(answer.json()["status"], "accepted");
        assert_eq!(
            answer.json()["webhook_event_id"],
            original["webhook_event_id"]
        );
        assert_eq!(answer.json()["conversion_id"], original["conversion_id"]);
    }
    // Taken after the backup, so the restored store has never seen it.
    let again = post_sale(server.addr, "after-the-backup").unwrap();
    assert_eq!(again.status, 200, "{}", again.body);
    let log = server.stop();
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn backup_never_overwrites_a_file_and_never_invents_a_database() {
    let (target, db_path) = sqlite_target("backup_refuses");
    let dir = tempfile::tempdir().unwrap();

    let missing = backup(&target.url, &dir.path().join("copy.db"));
    let line = one_line_failure(&missing);
    assert!(line.contains("nothing to back up"), "{line}");
    assert!(!db_path.exists(), "a backup must not create the database");
    assert!(!dir.path().join("copy.db").exists());

    let mut server = Server::start(&target.url, &[]);
    assert_eq!(post_sale(server.addr, "one").unwrap().status, 200);
    let precious = dir.path().join("last-good-backup.db");
    std::fs::write(&precious, b"yesterday's backup").unwrap();
    let refused = backup(&target.url, &precious);
    let line = one_line_failure(&refused);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(std::fs::read(&precious).unwrap(), b"yesterday's backup");
    assert!(server.exit_status().is_none(), "the server is unaffected");
    server.stop();
}

#[test]
fn backup_on_postgres_exits_1_pointing_at_pg_dump() {
    let Some(target) = Target::new(Backend::Postgres, "backup_pg") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    let output = backup(&target.url, &path);
    let line = one_line_failure(&output);
    assert!(line.contains("pg_dump"), "{line}");
    assert!(
        !line.contains("postgres://"),
        "no URL, so no password: {line}"
    );
    assert!(!path.exists(), "nothing written");
}

#[test]
fn version_prints_the_version() {
    let output = Command::new(env!("CARGO_BIN_EXE_hooklatch"))
        .arg("--version")
        .output()
        .expect("run hooklatch --version");
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout).trim(),
        format!("hooklatch {}", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------------------
// The systemd unit
// ---------------------------------------------------------------------------------------

const UNIT: &str = include_str!("../deploy/hooklatch.service");

/// The `Key=value` lines of the unit's `[Service]` section.
fn service_settings() -> Vec<(&'static str, &'static str)> {
    UNIT.lines()
        .skip_while(|l| l.trim() != "[Service]")
        .skip(1)
        .take_while(|l| !l.starts_with('['))
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect()
}

#[test]
fn the_service_unit_runs_confined_as_its_own_user_with_its_state_in_one_directory() {
    let settings = service_settings();
    let has = |key: &str, value: &str| settings.contains(&(key, value));
    for (key, value) in [
        ("User", "hooklatch"),
        ("StateDirectory", "hooklatch"),
        ("WorkingDirectory", "/var/lib/hooklatch"),
        (
            "Environment",
            "DATABASE_URL=sqlite:///var/lib/hooklatch/hooklatch.db",
        ),
        ("EnvironmentFile", "-/etc/hooklatch/env"),
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        // Port 443 for HTTPS as the hooklatch user, and no other capability.
        ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("Restart", "on-failure"),
        ("ExecStart", "/usr/local/bin/hooklatch serve"),
    ] {
        assert!(has(key, value), "{key}={value} missing from the unit");
    }
    // The database URL the unit sets is one the binary accepts, inside the state directory.
    let url = hooklatch::config::DatabaseUrl::parse("sqlite:///var/lib/hooklatch/hooklatch.db")
        .expect("the unit's DATABASE_URL parses");
    assert_eq!(
        url,
        hooklatch::config::DatabaseUrl::Sqlite("/var/lib/hooklatch/hooklatch.db".into())
    );
}

/// `systemd-analyze verify` on the unit as installed, with the binary where ExecStart
/// says (here: the test build). verify exits 0 on unknown keys and bad values, only
/// printing them, so any output at all is a failure.
#[test]
fn the_service_unit_passes_systemd_analyze_verify() {
    let probe = Command::new("systemd-analyze").arg("--version").output();
    if probe.is_err() {
        assert!(
            !common::in_ci(),
            "CI=true but systemd-analyze is missing (apt-get install -y systemd)"
        );
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED (no systemd-analyze): the_service_unit_passes_systemd_analyze_verify"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("hooklatch.service");
    let installed = UNIT.replace(
        "ExecStart=/usr/local/bin/hooklatch ",
        &format!("ExecStart={} ", env!("CARGO_BIN_EXE_hooklatch")),
    );
    assert_ne!(
        installed, UNIT,
        "ExecStart points at /usr/local/bin/hooklatch"
    );
    std::fs::write(&unit, installed).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        // Offline: no running systemd is needed, nor asked.
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("run systemd-analyze verify");
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{said}");
    assert_eq!(said.trim(), "", "systemd-analyze verify complained");
}
