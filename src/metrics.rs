//! Prometheus metrics: deliveries by source and outcome, signature failures by source and
//! reason, store errors, a latency histogram, and forwarding (attempts by result, the
//! outbox backlog). One process-wide recorder, installed on first use.
//!
//! The `source` label takes only names the operator configured or the presets; any other
//! source is `other`, so a client spraying random source names cannot grow the label set.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::model::Source;

pub const DELIVERIES: &str = "hooklatch_deliveries_total";
pub const SIGNATURE_FAILURES: &str = "hooklatch_signature_failures_total";
pub const STORE_ERRORS: &str = "hooklatch_store_errors_total";
pub const LATENCY: &str = "hooklatch_request_duration_seconds";
pub const FORWARD_ATTEMPTS: &str = "hooklatch_forward_attempts_total";
pub const FORWARD_PENDING: &str = "hooklatch_forward_pending";
pub const FORWARD_FAILED: &str = "hooklatch_forward_failed";
pub const FORWARD_OLDEST_PENDING: &str = "hooklatch_forward_oldest_pending_seconds";
pub const FORWARD_PAUSED: &str = "hooklatch_forward_paused_sources";
pub const FORWARD_ALERTS: &str = "hooklatch_forward_alerts_total";
pub const FORWARD_RETRY_AFTER: &str = "hooklatch_forward_retry_after_total";

/// Latency buckets in seconds: the targets are around a millisecond.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The process-wide handle. A second install in one process (tests) reuses the first.
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new().set_buckets(&BUCKETS).ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    spawn_upkeep(handle.clone());
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Histogram samples pile up in the recorder until upkeep folds them into buckets; with
/// no scraper calling /metrics that would grow without bound under load, so upkeep runs
/// on its own clock too.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("hooklatch-metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "metrics upkeep thread not started; histograms drain only when scraped");
    }
}

const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The text exposition, or an empty page when no recorder could be installed.
pub fn render() -> String {
    match handle() {
        Some(handle) => {
            // Without the exporter's own listener, histograms need this to drain.
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// Whether the operator configured a source or it is a preset. `config::Sources` answers
/// it; the question is asked here because metrics sits below config.
pub trait KnownSources {
    fn is_known(&self, source: &Source) -> bool;
}

/// The bounded label for a source.
pub fn source_label(sources: &impl KnownSources, source: &Source) -> String {
    if sources.is_known(source) {
        source.as_str().to_owned()
    } else {
        "other".to_owned()
    }
}

pub fn delivery(source: &str, outcome: &'static str, elapsed: Duration) {
    metrics::counter!(DELIVERIES, "source" => source.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!(LATENCY, "outcome" => outcome).record(elapsed.as_secs_f64());
}

pub fn signature_failure(source: &str, reason: &'static str) {
    metrics::counter!(SIGNATURE_FAILURES, "source" => source.to_owned(), "reason" => reason)
        .increment(1);
}

pub fn store_error(kind: &'static str) {
    metrics::counter!(STORE_ERRORS, "kind" => kind).increment(1);
}

/// One forward attempt by result: `delivered`, `failed_attempt` or `gave_up`. Only
/// sources with `forward_to` have entries, so the label set stays the configured one.
pub fn forward_attempt(source: &str, result: &'static str) {
    metrics::counter!(FORWARD_ATTEMPTS, "source" => source.to_owned(), "result" => result)
        .increment(1);
}

/// The outbox as the store last reported it (on PostgreSQL: all instances together).
/// The oldest pending age is 0 when nothing is pending, so "older than 10 minutes"
/// is a plain threshold alert.
pub fn forward_backlog(backlog: &crate::model::outbox::ForwardBacklog) {
    metrics::gauge!(FORWARD_PENDING).set(backlog.pending as f64);
    metrics::gauge!(FORWARD_FAILED).set(backlog.failed as f64);
    metrics::gauge!(FORWARD_OLDEST_PENDING).set(backlog.oldest_pending_secs.unwrap_or(0.0));
    metrics::gauge!(FORWARD_PAUSED).set(backlog.paused_sources as f64);
}

/// One alert by type (`forwarding.paused`, `forwarding.resumed`) and result (`sent`,
/// `failed` after its retries).
pub fn alert(kind: &str, result: &'static str) {
    metrics::counter!(FORWARD_ALERTS, "type" => kind.to_owned(), "result" => result).increment(1);
}

/// A `Retry-After` that set an event's next attempt.
pub fn retry_after_honoured(source: &str) {
    metrics::counter!(FORWARD_RETRY_AFTER, "source" => source.to_owned()).increment(1);
}
