//! A throwaway PostgreSQL primary with a synchronous streaming standby on loopback, for
//! the failover tests (SPEC §10): `initdb`, `pg_basebackup -R`, and
//! `synchronous_standby_names`, with the server binaries of the newest
//! `/usr/lib/postgresql/*/bin`. The servers run as the `postgres` user when the tests run
//! as root (PostgreSQL refuses to run as root). Everything lives in one temporary
//! directory, removed with the servers when the [`Cluster`] is dropped. [`Standalone`] is
//! one such server alone, configured by its test (the TLS tests' `ssl = on`).
//!
//! Without those binaries the tests say SKIPPED on the terminal; with `CI=true` they
//! fail instead (`.ci/run` installs them).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::in_ci;
use super::pg_tools::{as_postgres, free_port, give_to_postgres, server_bin};

/// The standby's name in `synchronous_standby_names`.
const STANDBY_NAME: &str = "standby";

/// One server of the pair (or of a pg_auto_failover formation).
pub struct Node {
    pub port: u16,
    pub data: PathBuf,
    /// The database hooklatch uses on it.
    pub database: &'static str,
}

impl Node {
    /// A URL for this server alone.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}",
            self.port, self.database
        )
    }

    /// Asserts that every acknowledged delivery (event id → the `webhook_event_id` its
    /// 2xx named) is on this server exactly once, with that row id and its conversion.
    pub fn assert_acknowledged(&self, acknowledged: &HashMap<String, i64>, when: &str) {
        let rows: HashMap<String, (i64, i64, i64)> = self
            .with_client(|client| {
                client
                    .query(
                        include_str!("../../sql/postgres/test_events_with_conversions.sql"),
                        &[&"refersion"],
                    )
                    .expect("events on the node")
            })
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
            .collect();
        for (id, webhook_event_id) in acknowledged {
            let Some(&(events, row, conversions)) = rows.get(id) else {
                panic!("{when}: {id} got a 2xx but is not on the server");
            };
            assert_eq!(events, 1, "{when}: {id} stored {events} times");
            assert_eq!(row, *webhook_event_id, "{when}: {id} has another row id");
            assert_eq!(conversions, 1, "{when}: {id} has {conversions} conversions");
        }
    }

    /// Runs `work` with a client on this server, on a plain thread: the sync client
    /// must neither run nor be dropped on a tokio runtime thread.
    pub fn with_client<T: Send>(&self, work: impl FnOnce(&mut postgres::Client) -> T + Send) -> T {
        self.try_with_client(|client| Ok(work(client)))
            .expect("connect to a node")
    }

    /// [`Node::with_client`] for a server that may be down or refusing: the error of
    /// the connection or of `work`.
    pub fn try_with_client<T: Send>(
        &self,
        work: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, postgres::Error> {
        let url = self.url();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut config: postgres::Config = url.parse().expect("node URL");
                config.connect_timeout(Duration::from_secs(5));
                let mut client = config.connect(postgres::NoTls)?;
                work(&mut client)
            })
            .join()
            .expect("client thread")
        })
    }
}

/// A primary and a synchronous standby, both running.
pub struct Cluster {
    bin: PathBuf,
    /// Holds the data directories; removed last.
    dir: tempfile::TempDir,
    pub primary: Node,
    pub standby: Node,
}

impl Cluster {
    /// Starts the pair, or `None` (after a loud SKIPPED line) when the PostgreSQL server
    /// binaries are not installed and `CI` is not set.
    pub fn start(test: &str) -> Option<Cluster> {
        let Some(bin) = server_bin() else {
            let why = "no initdb/pg_ctl/pg_basebackup under /usr/lib/postgresql/*/bin";
            if in_ci() {
                panic!("CI=true but {why}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED ({why}): {test}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("hooklatch-cluster-")
            .tempdir()
            .expect("temp dir");
        give_to_postgres(dir.path());
        let primary = Node {
            port: free_port(),
            data: dir.path().join("primary"),
            database: "postgres",
        };
        let standby = Node {
            port: free_port(),
            data: dir.path().join("standby"),
            database: "postgres",
        };
        let cluster = Cluster {
            bin,
            dir,
            primary,
            standby,
        };
        cluster.init_primary();
        cluster.clone_standby();
        cluster.wait_until_synchronous();
        Some(cluster)
    }

    /// The URL listing `first` then `second`, as a multi-host libpq URL asking for the
    /// one that accepts writes.
    pub fn url(&self, first: &Node, second: &Node) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            first.port, second.port
        )
    }

    fn init_primary(&self) {
        let data = self.primary.data.to_str().expect("path");
        self.run(
            "initdb",
            &["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        // Loopback only; durable enough for a test that crashes a server, not the
        // machine (fsync off), and small. `synchronous_commit = on` with a named
        // synchronous standby: a commit is acknowledged once the standby has it.
        append(
            &self.primary.data.join("postgresql.conf"),
            &format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\n\
                 fsync = off\nfull_page_writes = off\nshared_buffers = 16MB\nmax_connections = 60\n\
                 wal_level = replica\nmax_wal_senders = 4\nsynchronous_commit = on\n\
                 synchronous_standby_names = '{STANDBY_NAME}'\n",
                port = self.primary.port,
                sock = self.dir.path().display(),
            ),
        );
        self.start_node(&self.primary);
    }

    fn clone_standby(&self) {
        let data = self.standby.data.to_str().expect("path");
        let port = self.primary.port.to_string();
        self.run(
            "pg_basebackup",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                "postgres",
                "-D",
                data,
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
        );
        // Its own port; its name, so the primary waits for it; and no synchronous
        // standby of its own, or its first commit after promotion would wait forever.
        append(
            &self.standby.data.join("postgresql.conf"),
            &format!(
                "port = {}\ncluster_name = '{STANDBY_NAME}'\nsynchronous_standby_names = ''\n",
                self.standby.port
            ),
        );
        append(
            &self.standby.data.join("postgresql.auto.conf"),
            &format!(
                "primary_conninfo = 'host=127.0.0.1 port={} user=postgres application_name={STANDBY_NAME}'\n",
                self.primary.port
            ),
        );
        self.start_node(&self.standby);
    }

    fn start_node(&self, node: &Node) {
        let data = node.data.to_str().expect("path");
        let log = node.data.with_extension("log");
        self.run(
            "pg_ctl",
            &["-D", data, "-l", log.to_str().expect("path"), "-w", "start"],
        );
    }

    /// Waits until the primary reports its standby as synchronous, so every commit from
    /// now on is on both.
    fn wait_until_synchronous(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let state: Option<String> = self.primary.with_client(|client| {
                client
                    .query_opt(
                        "SELECT sync_state FROM pg_stat_replication WHERE application_name = $1",
                        &[&STANDBY_NAME],
                    )
                    .expect("pg_stat_replication")
                    .map(|row| row.get(0))
            });
            if state.as_deref() == Some("sync") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the standby did not become synchronous (state {state:?}); see {}",
                self.standby.data.with_extension("log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -9` of the primary's postmaster: a crash, nothing flushed or said to anyone.
    pub fn crash_primary(&self) {
        let pid = std::fs::read_to_string(self.primary.data.join("postmaster.pid"))
            .expect("postmaster.pid");
        let pid = pid.lines().next().expect("pid line").trim().to_owned();
        let status = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -9 {pid}");
    }

    /// The primary turns read-only without stopping: every write gets SQLSTATE 25006.
    pub fn demote_primary(&self) {
        self.primary.with_client(|client| {
            client
                .batch_execute("ALTER SYSTEM SET default_transaction_read_only = on")
                .and_then(|()| client.batch_execute("SELECT pg_reload_conf()"))
                .expect("demote");
        });
    }

    /// Promotes the standby and returns once it accepts writes.
    pub fn promote_standby(&self) {
        let data = self.standby.data.to_str().expect("path");
        self.run("pg_ctl", &["-D", data, "-w", "promote"]);
    }

    fn run(&self, program: &str, args: &[&str]) -> Output {
        run(&self.bin, self.dir.path(), program, args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in [&self.standby, &self.primary] {
            stop(&self.bin, node);
        }
    }
}

/// One PostgreSQL server on loopback, given files in its data directory and lines of
/// `postgresql.conf` before it starts (the TLS tests' server with `ssl = on`). Removed
/// with its directory when dropped.
pub struct Standalone {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub node: Node,
}

impl Standalone {
    /// Starts the server, or `None` (after a loud SKIPPED line) when the PostgreSQL
    /// server binaries are not installed and `CI` is not set. `files` are written into
    /// the data directory, owned by the server's user and readable by it alone (as
    /// PostgreSQL wants a key file).
    pub fn start(test: &str, files: &[(&str, &[u8])], conf: &str) -> Option<Standalone> {
        let Some(bin) = server_bin() else {
            let why = "no initdb/pg_ctl under /usr/lib/postgresql/*/bin";
            if in_ci() {
                panic!("CI=true but {why}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED ({why}): {test}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("hooklatch-server-")
            .tempdir()
            .expect("temp dir");
        give_to_postgres(dir.path());
        let server = Standalone {
            bin,
            node: Node {
                port: free_port(),
                data: dir.path().join("data"),
                database: "postgres",
            },
            dir,
        };
        let data = server.node.data.to_str().expect("path");
        run(
            &server.bin,
            server.dir.path(),
            "initdb",
            &["-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        for (name, contents) in files {
            let path = server.node.data.join(name);
            std::fs::write(&path, contents).expect("write a server file");
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .expect("chmod 600");
            give_to_postgres(&path);
        }
        append(
            &server.node.data.join("postgresql.conf"),
            &format!(
                "port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sock}'\n\
                 fsync = off\nshared_buffers = 16MB\nmax_connections = 40\n{conf}",
                port = server.node.port,
                sock = server.dir.path().display(),
            ),
        );
        let log = server.node.data.with_extension("log");
        run(
            &server.bin,
            server.dir.path(),
            "pg_ctl",
            &["-D", data, "-l", log.to_str().expect("path"), "-w", "start"],
        );
        Some(server)
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        stop(&self.bin, &self.node);
    }
}

/// Runs a server binary as the `postgres` user (when root), failing the test with its
/// output on error.
fn run(bin: &Path, dir: &Path, program: &str, args: &[&str]) -> Output {
    let output = as_postgres(&bin.join(program))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Stops `node` at once, if it runs (a crashed one has no postmaster to stop).
fn stop(bin: &Path, node: &Node) {
    if !node.data.join("postmaster.pid").exists() {
        return;
    }
    let data = node.data.to_str().unwrap_or_default();
    let _ = as_postgres(&bin.join("pg_ctl"))
        .args(["-D", data, "-m", "immediate", "-w", "stop"])
        .output();
}

fn append(path: &Path, text: &str) {
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(text.as_bytes()).expect("append");
}
