//! Forwarding to the merchant's app (SPEC §6): a transactional outbox, filled in the
//! receive transaction, drained by a worker that signs each request the Standard
//! Webhooks way and retries with exponential backoff.
//!
//! - `model::outbox`: the data the store hands over (below both, so neither imports
//!   the other).
//! - [`request`]: what one attempt sends (headers, signature).
//! - [`worker`]: claiming, sending, recording, waking up.
//! - [`pace`]: each source's `forward_rate`, and `Retry-After`.
//! - [`alert`]: one alert per incident to `alert_to`.
//!
//! Settings come from `Config`: [`ForwardConfig`] (top level) and each source's
//! `forward_to` (`Sources::forward_to`).

pub mod alert;
pub mod pace;
pub mod request;
pub mod worker;

pub use crate::config::ForwardConfig;
pub use alert::Alerter;
pub use worker::{Forwarder, backoff};
