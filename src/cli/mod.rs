//! Subcommands other than `serve` and `migrate`, one file each. `main.rs` dispatches to
//! them; each reads the same `Config` as `serve`, runs on the main thread (where the sync
//! PostgreSQL client may block) and works while a server runs on the same store.

pub mod backup;
pub mod events;
pub mod export;
pub mod forward;
pub mod import;
pub mod prune;
