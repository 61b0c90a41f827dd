//! What the harnesses that run their own PostgreSQL servers share (`cluster.rs`, a
//! streaming pair and a standalone server; `formation.rs`, a pg_auto_failover formation): the Debian server
//! binaries, running them as the `postgres` user when the tests run as root (PostgreSQL
//! refuses to run as root), and loopback ports.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest PostgreSQL server binaries installed the Debian way.
pub fn server_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "pg_basebackup"]
                .iter()
                .all(|b| bin.join(b).exists())
                .then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `program` run as the `postgres` user when the tests run as root, else as is. The
/// environment set on the command reaches the program (`runuser` keeps it).
pub fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

/// Gives `path` to the `postgres` user (when root): a directory to create data
/// directories in, or a file the server reads.
pub fn give_to_postgres(path: &Path) {
    if !is_root() {
        return;
    }
    let status = Command::new("chown")
        .arg("postgres:postgres")
        .arg(path)
        .status()
        .expect("chown");
    assert!(status.success(), "chown postgres {}", path.display());
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}
