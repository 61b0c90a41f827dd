//! Forwarding to the merchant's app (SPEC §6): a transactional outbox, filled in the
//! receive transaction, drained by a worker that signs each request the Standard
//! Webhooks way and retries with exponential backoff.
//!
//! - `model::outbox`: the data the store hands over (below both, so neither imports
//!   the other).
//! - [`request`]: what one attempt sends (headers, signature).
//! - [`worker`]: claiming, sending, recording, waking up.
//!
//! Settings come from `Config`: [`ForwardConfig`] (top level) and each source's
//! `forward_to` (`Sources::forward_to`).

pub mod request;
pub mod worker;

pub use crate::config::ForwardConfig;
pub use worker::{Forwarder, backoff};
