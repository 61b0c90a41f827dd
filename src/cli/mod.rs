//! Subcommands other than `serve` and `migrate`, one file each. `main.rs` dispatches to
//! them; each reads the same `Config` as `serve` and works while a server runs.

pub mod backup;
