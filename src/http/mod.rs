//! The HTTP layer: routes, request reading and answers. It knows the store only as
//! `dyn Store` and never sees SQL.
//!
//! Inside, imports point down only: `routes` and `server` sit on top, `admin` and
//! `webhook` below them, `app`, `body`, `error`, `limits` and `peer` at the bottom. Modules name the
//! module that defines an item (`http::app::App`), never this file's re-exports, so a
//! parent and its children never import each other.

pub mod admin;
mod app;
mod body;
pub mod error;
mod limits;
pub mod peer;
mod routes;
mod server;
mod webhook;

pub use app::App;
pub use routes::routes;
pub use server::{serve, serve_with};
