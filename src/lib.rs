//! hooklatch: receives webhooks and records each event exactly once per
//! `(source, external_event_id)`, turning affiliate sales into conversions in the same
//! atomic step, on SQLite or PostgreSQL.
//!
//! `main.rs` parses settings, opens the store and calls [`serve`]; tests drive
//! [`routes`] and [`serve`] directly. This file only declares the modules (see the
//! README's map) and re-exports what main and the tests start from.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod error;
pub mod forward;
pub mod http;
pub mod json;
pub mod metrics;
pub mod model;
pub mod read;
pub mod sources;
pub mod store;
pub mod tls;

pub use http::{App, routes, serve, serve_with};
