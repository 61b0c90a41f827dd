//! The real binary for end-to-end tests: a fresh store for it, the server on a port of
//! its own choosing with its log collected, and a raw HTTP client that never panics on a
//! cut connection (a test may be cutting it on purpose).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use hooklatch::config::DatabaseUrl;
use hooklatch::store::{self, Store, StoreOptions};

use super::{Backend, TestDb};

/// How long the binary may take to migrate and listen.
pub const STARTUP: Duration = Duration::from_secs(20);

/// Polls `done` until it holds or `limit` has passed; answers whether it held.
pub fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    done()
}

/// A store for the binary: a fresh SQLite file (not opened by the test until the end, so
/// only the server touches it) or a fresh PostgreSQL database.
pub struct Target {
    pub url: String,
    pub sqlite: Option<(tempfile::TempDir, PathBuf)>,
    pub pg: Option<TestDb>,
}

impl Target {
    pub fn new(backend: Backend, test: &str) -> Option<Target> {
        Some(match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("hooklatch.db");
                Target {
                    url: format!("sqlite://{}", path.display()),
                    sqlite: Some((dir, path)),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let db = TestDb::fresh(Backend::Postgres, test)?;
                let DatabaseUrl::Postgres(url) = &db.url else {
                    unreachable!()
                };
                Target {
                    url: url.clone(),
                    sqlite: None,
                    pg: Some(db),
                }
            }
        })
    }

    /// The database the binary uses.
    pub fn database_url(&self) -> DatabaseUrl {
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => DatabaseUrl::Sqlite(path.clone()),
            (None, Some(db)) => db.url.clone(),
            _ => unreachable!(),
        }
    }

    /// Row counts, read straight from the database.
    pub fn totals(&self) -> super::Totals {
        super::totals(&self.database_url())
    }

    /// The conversion of event `(source, id)`, read straight from the database.
    pub fn conversion(
        &self,
        source: &hooklatch::model::Source,
        id: &hooklatch::model::EventId,
    ) -> Option<super::StoredConversion> {
        super::conversion(&self.database_url(), source, id)
    }

    /// A store on the same data, for checking rows.
    pub fn store(&self) -> Arc<dyn Store> {
        match (&self.sqlite, &self.pg) {
            (Some((_, path)), _) => {
                store::open(&DatabaseUrl::Sqlite(path.clone()), &StoreOptions::default()).unwrap()
            }
            (None, Some(db)) => db.store.clone(),
            _ => unreachable!(),
        }
    }
}

pub fn server_args(database_url: &str, extra: &[&str]) -> Vec<String> {
    [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--database-url",
        database_url,
    ]
    .iter()
    .chain(extra)
    .map(|s| (*s).to_owned())
    .collect()
}

/// The real binary, serving on a port of its own choosing.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Log,
}

pub enum Log {
    Pipe(Arc<Mutex<String>>),
    File(PathBuf),
}

impl Server {
    pub fn start(database_url: &str, extra: &[&str]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_hooklatch"));
        command.args(server_args(database_url, extra));
        Server::spawn(command)
    }

    pub fn spawn(mut command: Command) -> Server {
        prepare(&mut command).stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn hooklatch");
        let (log, rx) = read_log(child.stderr.take().unwrap());
        match rx.recv_timeout(STARTUP) {
            Ok(addr) => Server {
                child,
                addr,
                log: Log::Pipe(log),
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hooklatch did not start: {}", log.lock().unwrap());
            }
        }
    }

    /// Logs to a file, so the log shares the fate of the files beside it.
    pub fn spawn_logging_to(mut command: Command, log: &Path) -> Server {
        let file = std::fs::File::create(log).unwrap();
        prepare(&mut command).stderr(file);
        let mut child = command.spawn().expect("spawn hooklatch");
        let deadline = Instant::now() + STARTUP;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(listening_address) {
                return Server {
                    child,
                    addr,
                    log: Log::File(log.to_owned()),
                };
            }
            if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                panic!("hooklatch did not start: {text}");
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        match &self.log {
            Log::Pipe(log) => log.lock().unwrap().clone(),
            Log::File(path) => std::fs::read_to_string(path).unwrap_or_default(),
        }
    }

    pub fn signal(&self, name: &str) {
        // The shell's builtin, so no separate `kill` program is needed.
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$0\" \"$1\""])
            .arg(name)
            .arg(self.pid().to_string())
            .status()
            .expect("sh");
        assert!(status.success(), "kill -{name}");
    }

    /// SIGKILL: no shutdown code runs.
    pub fn crash(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "still running {within:?} after the signal: {}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, expecting a clean exit; returns the log.
    pub fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(15));
        assert!(status.success(), "{status:?}: {}", self.log());
        self.log()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn prepare(command: &mut Command) -> &mut Command {
    command
        .env_remove("DATABASE_URL")
        .env_remove("HOOKLATCH_CONFIG")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
}

/// The address in `hooklatch listening on ADDR`.
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    let (_, rest) = line.split_once("hooklatch listening on ")?;
    let addr: String = rest
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
        .collect();
    addr.parse().ok()
}

/// A child process waited for with a bound; `Err` when it is still running (listening).
pub struct Running {
    pub child: Child,
    pub address: Option<SocketAddr>,
}

/// Collects a child's stderr on a thread, and sends the address once it says it listens.
pub fn read_log(
    stderr: std::process::ChildStderr,
) -> (Arc<Mutex<String>>, mpsc::Receiver<SocketAddr>) {
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    thread::spawn({
        let log = log.clone();
        move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_address(&line) {
                    let _ = tx.send(addr);
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        }
    });
    (log, rx)
}

pub trait WaitWithin {
    fn wait_with_output_within(self, limit: Duration) -> Result<(ExitStatus, String), Running>;
}

impl WaitWithin for Child {
    fn wait_with_output_within(mut self, limit: Duration) -> Result<(ExitStatus, String), Running> {
        let (log, rx) = read_log(self.stderr.take().unwrap());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.try_wait().unwrap() {
                thread::sleep(Duration::from_millis(50));
                let text = log.lock().unwrap().clone();
                return Ok((status, text));
            }
            if let Ok(addr) = rx.try_recv() {
                return Err(Running {
                    child: self,
                    address: Some(addr),
                });
            }
            if Instant::now() > deadline {
                return Err(Running {
                    child: self,
                    address: None,
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A complete HTTP answer.
pub use super::RawReply as Answer;

pub fn post_sale(addr: SocketAddr, id: &str) -> Result<Answer, String> {
    post(addr, "/webhooks/refersion", &[], &super::sale(id, "3.25"))
}

pub fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    exchange(addr, request.as_bytes())
}

pub fn get(addr: SocketAddr, path: &str) -> Result<Answer, String> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// One request on a fresh connection. `Err` when the connection fails or the answer is
/// cut short: the client then cannot know what happened to its request.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Answer, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(request)
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read: {e}"))?;
    parse_answer(&raw)
}

pub fn parse_answer(raw: &[u8]) -> Result<Answer, String> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer: {text:?}"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|l| l.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let answer = Answer {
        status,
        headers,
        body: body.to_owned(),
    };
    if let Some(length) = answer.header("content-length")
        && length.parse::<usize>().ok() != Some(answer.body.len())
    {
        return Err(format!("answer cut short: {text:?}"));
    }
    Ok(answer)
}
