//! Subcommands other than `serve` and `migrate`, one file each; `main.rs` dispatches.

pub mod forward;
