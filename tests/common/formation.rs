//! A pg_auto_failover formation on loopback, built with Debian's `pg_autoctl`
//! (`postgresql-15-auto-failover`, `pg-auto-failover-cli`) the way the README's recipe
//! ("When the database machine fails") builds one on real hosts: a monitor, then two
//! nodes that become a primary and its synchronous secondary. Each `pg_autoctl` service
//! runs in a process group of its own, so losing a database machine is one `kill -9` of
//! that group (its keeper and its PostgreSQL together); nothing here ever promotes a node,
//! the monitor must do it on its own.
//!
//! The monitor's health checks are tightened ([`MONITOR_SETTINGS`]) so a failover takes
//! seconds instead of the defaults' ~50 s. Everything (data, `pg_autoctl`'s XDG config
//! and state, logs) lives in one temporary directory, removed with the services when the
//! [`Formation`] is dropped.
//!
//! Without `pg_autoctl` the test says SKIPPED on the terminal; with `CI=true` it fails
//! instead (`.ci/run` installs the packages).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::cluster::Node;
use super::in_ci;
use super::pg_tools::{as_postgres, free_port, give_to_postgres, server_bin};

/// The database each node serves (`--dbname`), as in the README.
const DATABASE: &str = "hooklatch";

/// How long building the formation may take (two `initdb`s, a `pg_basebackup`, and
/// the monitor's state changes).
const SETUP: Duration = Duration::from_secs(60);

/// The monitor's failure detection, tightened for the test; the defaults are in the
/// comments. With the defaults a dead primary is declared unhealthy after
/// `node_considered_unhealthy_timeout` (20 s) and the secondary may take writes only
/// after `primary_demote_timeout` (30 s) more: ~50 s in all.
pub const MONITOR_SETTINGS: &[&str] = &[
    "ALTER SYSTEM SET pgautofailover.health_check_period = 1000", // 5000 ms
    "ALTER SYSTEM SET pgautofailover.health_check_timeout = 1000", // 5000 ms
    "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1", // 2
    "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500", // 2000 ms
    "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = 2000", // 20000 ms
    "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = 2000", // 30000 ms
    "ALTER SYSTEM SET pgautofailover.startup_grace_period = 1000", // 10000 ms
];

/// One `pg_autoctl` service, leading its own process group.
struct Service {
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Sends `signal` to the whole group: `pg_autoctl`, its sub-processes, PostgreSQL.
    fn signal_group(&self, signal: &str) -> bool {
        Command::new("kill")
            .args([
                &format!("-{signal}"),
                "--",
                &format!("-{}", self.child.id()),
            ])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

/// A data node: the server and the service that keeps it.
pub struct Member {
    pub node: Node,
    service: Service,
}

/// A monitor and two nodes: `nodes[0]` the primary, `nodes[1]` its secondary.
pub struct Formation {
    dir: tempfile::TempDir,
    monitor: Node,
    monitor_service: Service,
    pub nodes: Vec<Member>,
}

impl Formation {
    /// Builds and starts the formation and waits for a primary and a secondary, or
    /// `None` (after a loud SKIPPED line) when `pg_autoctl` is not installed and `CI`
    /// is not set.
    pub fn start(test: &str) -> Option<Formation> {
        // The CLI and the monitor's extension (for the server version in use) come in
        // two packages; both are needed.
        let tools = server_bin().filter(|bin| {
            let version = bin.parent().and_then(Path::file_name);
            let extension = version.map(|v| {
                Path::new("/usr/share/postgresql")
                    .join(v)
                    .join("extension/pgautofailover.control")
            });
            extension.is_some_and(|e| e.exists())
                && Command::new("pg_autoctl")
                    .arg("--version")
                    .output()
                    .is_ok_and(|o| o.status.success())
        });
        let Some(bin) = tools else {
            let why = "no pg_autoctl (postgresql-15-auto-failover, pg-auto-failover-cli)";
            if in_ci() {
                panic!("CI=true but {why}");
            }
            let _ = writeln!(std::io::stderr(), "SKIPPED ({why}): {test}");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("hooklatch-formation-")
            .tempdir()
            .expect("temp dir");
        give_to_postgres(dir.path());
        // pg_autoctl keeps its pid files in XDG_RUNTIME_DIR only if it exists, else in
        // /tmp/pg_autoctl, where they would outlive the test.
        let runtime = dir.path().join("run");
        std::fs::create_dir(&runtime).expect("runtime dir");
        give_to_postgres(&runtime);
        let pg_ctl = bin.join("pg_ctl");
        let monitor = Node {
            port: free_port(),
            data: dir.path().join("monitor"),
            database: "pg_auto_failover",
        };
        let monitor_data = path(&monitor.data);
        autoctl(
            dir.path(),
            &[
                "create",
                "monitor",
                "--pgdata",
                &monitor_data,
                "--pgport",
                &monitor.port.to_string(),
                "--hostname",
                "127.0.0.1",
                "--auth",
                "trust",
                "--no-ssl",
                "--pgctl",
                path(&pg_ctl).as_str(),
            ],
        );
        // `create monitor` has no --listen: keep the test's monitor off the network.
        autoctl(
            dir.path(),
            &[
                "config",
                "set",
                "--pgdata",
                &monitor_data,
                "postgresql.listen_addresses",
                "127.0.0.1",
            ],
        );
        let monitor_service = spawn(dir.path(), "monitor", &["run", "--pgdata", &monitor_data]);
        let mut formation = Formation {
            dir,
            monitor,
            monitor_service,
            nodes: Vec::new(),
        };
        formation.tune_monitor();

        let monitor_url = format!(
            "postgres://autoctl_node@127.0.0.1:{}/pg_auto_failover",
            formation.monitor.port
        );
        for name in ["node1", "node2"] {
            let node = Node {
                port: free_port(),
                data: formation.dir.path().join(name),
                database: DATABASE,
            };
            let service = spawn(
                formation.dir.path(),
                name,
                &[
                    "create",
                    "postgres",
                    "--pgdata",
                    &path(&node.data),
                    "--pgport",
                    &node.port.to_string(),
                    "--hostname",
                    "127.0.0.1",
                    "--listen",
                    "127.0.0.1",
                    "--name",
                    name,
                    "--dbname",
                    DATABASE,
                    "--monitor",
                    &monitor_url,
                    "--auth",
                    "trust",
                    "--no-ssl",
                    "--pgctl",
                    &path(&pg_ctl),
                    "--run",
                ],
            );
            formation.nodes.push(Member { node, service });
            if name == "node1" {
                // The first node alone is `single`; only then may the second join, or
                // either could end up primary.
                formation.wait_for_states(&[("node1", "single")], || {});
            }
        }
        // The secondary's pg_basebackup waits for a checkpoint, which a new server
        // spreads over minutes (checkpoint_completion_target); ask for it at once.
        formation.wait_for_states(&[("node1", "primary"), ("node2", "secondary")], || {
            let _ = formation.nodes[0]
                .node
                .try_with_client(|c| c.batch_execute("CHECKPOINT"));
        });
        Some(formation)
    }

    /// The URL the monitor gives for the formation (`pg_autoctl show uri`), with the
    /// user the tests connect as.
    pub fn url(&self) -> String {
        let output = autoctl(
            self.dir.path(),
            &[
                "show",
                "uri",
                "--formation",
                "default",
                "--pgdata",
                &path(&self.monitor.data),
            ],
        );
        let uri = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(
            uri.contains("target_session_attrs=read-write"),
            "pg_autoctl show uri: {uri}"
        );
        let rest = uri
            .strip_prefix("postgres://")
            .unwrap_or_else(|| panic!("pg_autoctl show uri: {uri}"));
        format!("postgres://postgres@{rest}")
    }

    /// Loses node `i`'s machine: `kill -9` of its `pg_autoctl` and its PostgreSQL at
    /// once, so nothing restarts it and it reports to nobody. Returns when.
    pub fn lose(&mut self, i: usize) -> Instant {
        let service = &mut self.nodes[i].service;
        assert!(service.signal_group("KILL"), "kill -9 of node {i}'s group");
        let at = Instant::now();
        let _ = service.child.wait();
        at
    }

    /// Waits until node `i` accepts writes (promoted, and no longer read-only: in
    /// `stop_replication` the monitor keeps a promoted node read-only until the old
    /// primary's demotion timeout has passed). Returns when it was first seen so.
    pub fn until_writable(&self, i: usize, limit: Duration) -> Instant {
        let deadline = Instant::now() + limit;
        loop {
            let writable = self.nodes[i].node.try_with_client(|c| {
                c.query_one(
                    "SELECT NOT pg_is_in_recovery() AND current_setting('transaction_read_only') = 'off'",
                    &[],
                )
                .map(|row| row.get::<_, bool>(0))
            });
            if writable.is_ok_and(|w| w) {
                return Instant::now();
            }
            assert!(
                Instant::now() < deadline,
                "node {i} did not accept writes within {limit:?}: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Each node's reported and assigned state, as the monitor has them.
    pub fn states(&self) -> Vec<(String, String, String)> {
        self.monitor
            .try_with_client(|c| {
                c.query(
                    "SELECT nodename, reportedstate::text, goalstate::text \
                     FROM pgautofailover.node ORDER BY nodeid",
                    &[],
                )
            })
            .map(|rows| {
                rows.iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until each named node has reported, and been assigned, its state; runs
    /// `meanwhile` between looks.
    fn wait_for_states(&self, want: &[(&str, &str)], mut meanwhile: impl FnMut()) {
        let deadline = Instant::now() + SETUP;
        loop {
            let states = self.states();
            let reached = want.iter().all(|(name, state)| {
                states
                    .iter()
                    .any(|(n, reported, goal)| n == name && reported == state && goal == state)
            });
            if reached {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the formation did not reach {want:?} within {SETUP:?} (now {states:?}): {}",
                self.logs()
            );
            meanwhile();
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Applies [`MONITOR_SETTINGS`] once the monitor answers (each its own statement:
    /// `ALTER SYSTEM` refuses to run in a transaction block).
    fn tune_monitor(&self) {
        let deadline = Instant::now() + SETUP;
        loop {
            let tuned = self.monitor.try_with_client(|c| {
                for statement in MONITOR_SETTINGS {
                    c.batch_execute(statement)?;
                }
                c.batch_execute("SELECT pg_reload_conf()")
            });
            match tuned {
                Ok(()) => return,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "tuning the monitor: {e}: {}",
                    self.logs()
                ),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every service's log, for a failure message.
    fn logs(&self) -> String {
        std::iter::once(&self.monitor_service)
            .chain(self.nodes.iter().map(|m| &m.service))
            .map(|s| {
                format!(
                    "\n--- {}\n{}",
                    s.log.display(),
                    std::fs::read_to_string(&s.log).unwrap_or_default()
                )
            })
            .collect()
    }
}

impl Drop for Formation {
    /// Stops every service still running: SIGTERM to its group (`pg_autoctl` stops its
    /// PostgreSQL), then SIGKILL for any that is not gone within 10 s.
    fn drop(&mut self) {
        let services: Vec<&mut Service> = self
            .nodes
            .iter_mut()
            .map(|m| &mut m.service)
            .chain(std::iter::once(&mut self.monitor_service))
            .filter_map(|s| s.is_running().then_some(s))
            .collect();
        for service in &services {
            service.signal_group("TERM");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for service in services {
            while service.is_running() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            if service.is_running() {
                service.signal_group("KILL");
                let _ = service.child.wait();
            }
        }
    }
}

/// Runs `pg_autoctl ARGS` to completion in `dir`, failing the test with its output on
/// error.
fn autoctl(dir: &Path, args: &[&str]) -> Output {
    let output = command(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("pg_autoctl: {e}"));
    assert!(
        output.status.success(),
        "pg_autoctl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Starts `pg_autoctl ARGS` as a service leading its own process group, logging to
/// `dir/NAME.log`.
fn spawn(dir: &Path, name: &str, args: &[&str]) -> Service {
    use std::os::unix::process::CommandExt;
    let log = dir.join(format!("{name}.log"));
    let file = std::fs::File::create(&log).expect("service log");
    let child = command(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log handle"))
        .stderr(file)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("pg_autoctl {args:?}: {e}"));
    Service { child, log }
}

/// `pg_autoctl` as the `postgres` user, with its configuration and state kept under
/// `dir` (it would otherwise use the user's home, shared by every test run).
fn command(dir: &Path) -> Command {
    let mut command = as_postgres(Path::new("pg_autoctl"));
    command
        .current_dir(dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_DATA_HOME", dir.join("share"))
        .env("XDG_RUNTIME_DIR", dir.join("run"));
    command
}

fn path(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_owned()
}
