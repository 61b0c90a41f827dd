//! Subcommands other than `serve` and `migrate`, one file each. Every command reads the
//! same settings as `serve`, runs on the main thread (where the sync PostgreSQL client
//! may block) and works while a server runs on the same store.

pub mod events;
pub mod export;
pub mod import;
pub mod prune;
