//! The console: server-rendered pages for a person (maud), with the stylesheet compiled
//! into the binary, so it works on a server without outside network and loads nothing
//! from anywhere else (the Content-Security-Policy says so to the browser too).
//!
//! Sign-in: a form takes the admin token once (never in a URL) and opens a session; the
//! cookie is `HttpOnly`, `SameSite=Strict` and expires. Every POST must come from the
//! console itself: `Origin` (when sent) must be this host, `Sec-Fetch-Site` must not be
//! cross-site, and forms of a signed-in person carry the session's CSRF token.
//!
//! Files: `routes` matches a request to its handler; `session` signs in and out and
//! guards every POST; `layout` frames a page and sets its headers; `fragments` are the
//! pieces of markup pages share; every other file is one page.

mod conversions;
mod event_detail;
mod events;
mod forwarding;
mod fragments;
mod layout;
mod login;
mod overview;
mod rejections;
mod routes;
mod session;

pub use layout::error_page;
pub use routes::{MAX_FORM_BYTES, Request, dispatch};
