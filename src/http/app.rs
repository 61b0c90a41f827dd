//! What every request handler shares: the store, the sources' settings, the limits and
//! the admin side's state.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::admin::auth::Admin;
use super::admin::rejections::Rejections;
use crate::config::{Config, Limits, OnConflict, Sources};
use crate::forward::Alerter;
use crate::store::{Store, StoreError, run_blocking};

/// What every request handler shares.
pub struct App {
    pub store: Arc<dyn Store>,
    pub sources: Sources,
    pub max_body_bytes: u64,
    pub on_conflict: OnConflict,
    pub body_timeout: Duration,
    /// Caps on connections and requests in flight, HTTP/2 keep-alive (the server loop's).
    pub limits: Limits,
    /// The one deadline of a request's store work (see `webhook::record`).
    pub store_timeout: Duration,
    /// The admin side; `None` keeps every `/admin` path a 404.
    pub admin: Option<Admin>,
    /// The last refused deliveries, for the admin side.
    pub rejections: Rejections,
    /// Notified after each commit of a forwarding event, so the worker sends at once.
    pub forward_wake: Arc<Notify>,
    /// The listener speaks HTTPS itself, so the console cookie is always `Secure`.
    pub https: bool,
    /// Alerts for the operator's pauses and resumes (`alert_to`).
    pub alerts: Alerter,
}

impl App {
    pub fn new(store: Arc<dyn Store>, config: &Config) -> App {
        // Installs the process-wide recorder on first use, so counters are never lost.
        let _ = crate::metrics::handle();
        let mut sources = config.sources.clone();
        sources.serving_on(config.listen, config.allow_unsigned);
        App {
            store,
            sources,
            max_body_bytes: config.max_body_bytes,
            on_conflict: config.on_conflict,
            body_timeout: config.body_timeout,
            limits: config.limits,
            store_timeout: config.store.statement_timeout,
            admin: config.admin_token.as_deref().map(Admin::new),
            rejections: Rejections::default(),
            forward_wake: Arc::new(Notify::new()),
            https: config.https.is_on(),
            alerts: Alerter::new(&config.forward),
        }
    }

    /// Turns the admin side on with this token, as `admin_token` does (configuration
    /// refuses one shorter than [`MIN_TOKEN_LEN`](super::admin::auth::MIN_TOKEN_LEN) at startup).
    pub fn with_admin_token(mut self, token: &str) -> App {
        self.admin = Some(Admin::new(token));
        self
    }

    /// Runs a read on the blocking pool. The store bounds its own waits by the store
    /// timeout; the timer here is only a backstop against a store that hangs outright.
    pub async fn store_call<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        tokio::time::timeout(
            self.store_timeout * 2,
            run_blocking(move || work(store.as_ref())),
        )
        .await
        .map_err(|_| StoreError::Timeout("the store did not answer".into()))?
    }
}
