//! The worker: claims due outbox entries, sends each once per claim, records the
//! outcome, and sleeps until woken.
//!
//! Waking up: the instance that commits a forwarding event wakes its own worker at once
//! (in-process, after the commit), so in normal operation the delay from commit to send
//! is one claim. A short poll covers the rest: retries falling due, entries committed
//! by another instance or requeued by the CLI, leases left by a dead instance. On
//! PostgreSQL this is a poll rather than LISTEN/NOTIFY on purpose: a NOTIFY inside
//! `process_webhook_idempotently` would take PostgreSQL's cluster-wide notify-queue
//! lock in every webhook's commit, serialising the hot path of every instance for a
//! wake-up the receiving instance already does in-process; the poll costs one indexed
//! query per instance per interval and needs no connection of its own.
//!
//! Claims are leases (see `Outbox::claim_forwards`), longer than an attempt can take, so
//! two instances never send one entry at once. SIGTERM stops claiming at once (SPEC §6)
//! and lets the attempts in flight finish and be recorded, each bounded by
//! `forward_timeout`, while the HTTP side uses its grace: a normal restart never sends
//! an event twice. Only an attempt still unrecorded past that bound is abandoned; its
//! lease is released with the others, so it stays pending and the next start (or
//! another instance) sends it again with the same `webhook-id`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::alert::Alerter;
use super::pace::{self, Pacer};
use super::{ForwardConfig, request};
use crate::config::Sources;
use crate::metrics;
use crate::model::Source;
use crate::model::clock::{now_text, unix_now};
use crate::model::outbox::{AttemptOutcome, AttemptReport, ForwardJob, RESPONSE_KEPT};
use crate::store::{Store, run_blocking};

/// Poll interval on PostgreSQL: bounds the delay for entries another instance committed.
const POLL_POSTGRES: Duration = Duration::from_millis(250);
/// On SQLite new entries always come with an in-process wake-up; the poll only finds due
/// retries and CLI requeues (a read; only a poll that finds one takes the writer).
const POLL_SQLITE: Duration = Duration::from_secs(1);
/// How often the backlog gauges are refreshed.
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// Bytes of an app's answer read so its connection can go back to the pool; a longer
/// answer closes the connection instead of being read to the end.
const DRAIN_LIMIT: usize = 64 * 1024;
/// A claimed entry waits at most this long for its source's pace while holding a slot;
/// one that would wait longer goes back to the outbox, due when its turn comes.
const LONGEST_PACE_WAIT: Duration = Duration::from_secs(2);

/// The delay before the retry that follows `failed` failed attempts (1 for the first):
/// `retry_initial` doubling per attempt, capped at `retry_max`, then ±20 % jitter so
/// entries that failed together do not come back together.
pub fn backoff(options: &ForwardConfig, failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(31);
    let base = options
        .retry_initial
        .checked_mul(1u32 << doublings)
        .unwrap_or(options.retry_max)
        .min(options.retry_max);
    base.mul_f64(0.8 + 0.4 * fastrand::f64())
}

/// Sends outbox entries to the sources' apps.
pub struct Forwarder {
    store: Arc<dyn Store>,
    options: ForwardConfig,
    /// Where each source forwards (`forward_to`), read per attempt.
    sources: Sources,
    client: reqwest::Client,
    owner: String,
    wake: Arc<Notify>,
    poll: Duration,
    pacer: Pacer,
    alerts: Alerter,
}

/// How long past `forward_timeout` a stopping worker waits for attempts in flight: the
/// attempt itself is over by then, this is for recording its outcome.
const RECORD_GRACE: Duration = Duration::from_secs(2);

/// A running worker; [`ForwarderHandle::stop`] ends it.
pub struct ForwarderHandle {
    stop: Arc<watch::Sender<bool>>,
    task: JoinHandle<()>,
}

/// Stops a worker's claiming from elsewhere (the shutdown signal), without waiting.
#[derive(Clone)]
pub struct StopClaiming(Arc<watch::Sender<bool>>);

impl StopClaiming {
    pub fn now(&self) {
        let _ = self.0.send(true);
    }
}

impl ForwarderHandle {
    /// A switch that stops claiming the moment it is flipped; attempts in flight go on.
    pub fn stop_claiming(&self) -> StopClaiming {
        StopClaiming(self.stop.clone())
    }

    /// Stops claiming, waits for the attempts in flight to finish and be recorded (each
    /// bounded by `forward_timeout`), then releases this worker's leases, so an entry
    /// left unfinished stays pending for the next start.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Forwarder {
    /// `wake` is the HTTP layer's `App::forward_wake`, notified after each commit of a
    /// forwarding event.
    pub fn new(
        store: Arc<dyn Store>,
        options: ForwardConfig,
        sources: Sources,
        wake: Arc<Notify>,
    ) -> Result<Forwarder, String> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("hooklatch/", env!("CARGO_PKG_VERSION")))
            // A redirect is not a delivery, and following one would send the signed body
            // somewhere the operator did not name.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .pool_max_idle_per_host(options.concurrency.max(1))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| format!("cannot build the forwarding HTTP client: {e}"))?;
        let poll = if store.backend() == "postgres" {
            POLL_POSTGRES
        } else {
            POLL_SQLITE
        };
        let alerts = Alerter::new(&options);
        Ok(Forwarder {
            store,
            alerts,
            pacer: Pacer::default(),
            options,
            sources,
            client,
            owner: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            wake,
            poll,
        })
    }

    /// This worker's lease owner name (unique per process start).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Runs the worker on the current tokio runtime.
    pub fn spawn(self) -> ForwarderHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(Arc::new(self).run(stopped));
        ForwarderHandle {
            stop: Arc::new(stop),
            task,
        }
    }

    /// Longer than an attempt plus recording it can take, so a live worker never loses
    /// its lease mid-attempt; short enough that a dead instance's entries come back soon.
    fn lease(&self) -> Duration {
        self.options.timeout * 2 + Duration::from_secs(30)
    }

    async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if self.store.backend() == "sqlite" {
            // One process owns the SQLite worker, so at its start any lease left in the
            // file belongs to a process that died: free those entries now, not after the
            // lease runs out.
            let store = self.store.clone();
            if let Err(e) = run_blocking(move || store.release_forwards(None)).await {
                tracing::warn!(error = %e, "cannot release forwarding leases left by an earlier run");
            }
        }
        let permits = Arc::new(Semaphore::new(self.options.concurrency.max(1)));
        let mut in_flight = JoinSet::new();
        let mut store_down = false;
        let mut gauges_due = Instant::now();
        // A dropped handle counts as a stop, so the loop never spins on a closed channel.
        while !*stop.borrow() && stop.has_changed().is_ok() {
            while in_flight.try_join_next().is_some() {}
            if Instant::now() >= gauges_due {
                gauges_due = Instant::now() + GAUGES_EVERY;
                self.refresh_gauges().await;
            }
            let free = permits.available_permits();
            let mut claimed = 0;
            // Sources at their forward_rate are left in the outbox until their turn.
            let (held, next_turn) = self.pacer.held();
            if free > 0 {
                let (store, owner, lease) = (self.store.clone(), self.owner.clone(), self.lease());
                let claim = move || store.claim_forwards_except(&owner, lease, free, &held);
                match run_blocking(claim).await {
                    Ok(jobs) => {
                        if store_down {
                            tracing::info!("forwarding resumed: the store answers again");
                            store_down = false;
                        }
                        claimed = jobs.len();
                        if *stop.borrow() {
                            // Stopped while this claim ran: none of it starts; the leases
                            // are released below.
                            break;
                        }
                        for job in jobs {
                            // Only this loop takes permits, and it claimed no more than
                            // were free.
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                break;
                            };
                            in_flight.spawn(self.clone().attempt(job, permit));
                        }
                    }
                    Err(e) => {
                        if !store_down {
                            tracing::warn!(error = %e, "forwarding paused: cannot claim outbox entries");
                            store_down = true;
                        }
                    }
                }
            }
            if claimed > 0 && claimed == free {
                // Every slot filled: more may be due, claim again once one frees.
                if permits.available_permits() == 0 {
                    tokio::select! {
                        _ = in_flight.join_next() => {}
                        _ = stop.changed() => {}
                    }
                }
                continue;
            }
            let poll = next_turn
                .map(|at| at.saturating_duration_since(Instant::now()))
                .unwrap_or(self.poll)
                .min(self.poll);
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
                Some(_) = in_flight.join_next(), if free == 0 => {}
            }
        }
        // No new claim from here on; what is in flight finishes and is recorded.
        let finishing = in_flight.len();
        let _ = tokio::time::timeout(self.options.timeout + RECORD_GRACE, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        let abandoned = in_flight.len();
        in_flight.shutdown().await;
        let (store, owner) = (self.store.clone(), self.owner.clone());
        match run_blocking(move || store.release_forwards(Some(&owner))).await {
            Ok(released) => tracing::info!(
                finished = finishing - abandoned,
                abandoned,
                released,
                "forwarding stopped; unfinished forwards stay pending"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "forwarding stopped; its leases could not be released and expire on their own"
            ),
        }
    }

    async fn refresh_gauges(&self) {
        let store = self.store.clone();
        match run_blocking(move || store.forward_backlog()).await {
            Ok(backlog) => metrics::forward_backlog(&backlog),
            Err(e) => tracing::debug!(error = %e, "forwarding backlog not measured"),
        }
    }

    /// One attempt, recorded. The permit is held until the outcome is recorded.
    async fn attempt(self: Arc<Self>, job: ForwardJob, _permit: OwnedSemaphorePermit) {
        let settings = Source::parse(&job.source).map(|source| self.sources.settings(&source));
        if let Some(every) = settings.as_ref().and_then(|s| s.forward_every) {
            match self.pacer.reserve(&job.source, every, LONGEST_PACE_WAIT) {
                Some(wait) if wait.is_zero() => {}
                Some(wait) => tokio::time::sleep(wait).await,
                None => return self.postpone(&job).await,
            }
        }
        let pause_after = settings
            .and_then(|s| s.forward_pause_after)
            .unwrap_or(self.options.pause_after);
        let at = now_text();
        let started = Instant::now();
        let (outcome, response) = self.send(&job).await;
        let duration_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let result = match &outcome {
            AttemptOutcome::Delivered { .. } => "delivered",
            AttemptOutcome::Failed { retry_in: None, .. } => "gave_up",
            AttemptOutcome::Failed { .. } => "failed_attempt",
        };
        metrics::forward_attempt(&job.source, result);
        match &outcome {
            AttemptOutcome::Delivered { status } => tracing::info!(
                source = %job.source, event_id = %job.event_id, status, "forwarded"
            ),
            AttemptOutcome::Failed {
                status,
                error,
                retry_in,
            } => tracing::warn!(
                source = %job.source,
                event_id = %job.event_id,
                status,
                error = %error,
                attempt = job.attempts + 1,
                retry_in_secs = retry_in.map(|d| d.as_secs_f64()),
                "forward attempt failed"
            ),
        }
        let report = AttemptReport {
            outcome,
            at,
            duration_ms,
            response,
            pause_after,
        };
        let (store, owner, id) = (self.store.clone(), self.owner.clone(), job.webhook_event_id);
        let recorded = run_blocking(move || store.record_forward(id, &owner, &report)).await;
        match recorded {
            Ok(None) => {}
            Ok(Some(paused)) => {
                tracing::warn!(
                    source = %paused.source,
                    consecutive_failures = paused.consecutive_failures,
                    "forwarding paused: the app keeps failing; resume with `hooklatch forward resume {}`",
                    paused.source
                );
                self.alerts.paused(&paused);
            }
            Err(e) => {
                // The entry keeps its lease until it expires, then is sent again with
                // the same webhook-id: at least once, never lost.
                tracing::warn!(source = %job.source, event_id = %job.event_id, error = %e, "forward outcome not recorded; it will be retried");
                metrics::store_error(e.kind());
            }
        }
    }

    /// Hands an entry back unattempted, due when its source's pace allows.
    async fn postpone(&self, job: &ForwardJob) {
        let delay = self.pacer.wait(&job.source);
        let (store, owner, id) = (self.store.clone(), self.owner.clone(), job.webhook_event_id);
        if let Err(e) = run_blocking(move || store.postpone_forward(id, &owner, delay)).await {
            // The lease runs out on its own and the entry comes back then.
            tracing::debug!(source = %job.source, error = %e, "paced entry not handed back");
        }
    }

    /// Sends one attempt: its outcome, and the first [`RESPONSE_KEPT`] bytes of the
    /// answer's body as text (for the history).
    async fn send(&self, job: &ForwardJob) -> (AttemptOutcome, Option<String>) {
        let url =
            Source::parse(&job.source).and_then(|s| self.sources.forward_to(&s).map(str::to_owned));
        let Some(url) = url else {
            let error = "the source has no forward_to setting".into();
            return (self.failed(job, None, error, None), None);
        };
        let Some(payload) = &job.payload else {
            // Nothing left to send, and nothing will come back: give up now.
            let outcome = AttemptOutcome::Failed {
                status: None,
                error: "the payload was pruned before it could be forwarded".into(),
                retry_in: None,
            };
            return (outcome, None);
        };
        let body = payload.clone().into_bytes();
        let headers = request::headers(job, &body, unix_now(), self.options.secret.as_deref());
        // The whole attempt (connect, send, answer) is bounded; the status decides.
        let deadline = tokio::time::Instant::now() + self.options.timeout;
        let sent = self.client.post(url).headers(headers).body(body).send();
        let mut response = match tokio::time::timeout_at(deadline, sent).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) if e.is_timeout() => {
                return (self.failed(job, None, self.timeout_text(), None), None);
            }
            Ok(Err(e)) => return (self.failed(job, None, error_without_url(e), None), None),
            Err(_) => return (self.failed(job, None, self.timeout_text(), None), None),
        };
        let status = response.status();
        let retry_after = pace::retry_after(status.as_u16(), response.headers(), SystemTime::now());
        // Read (a bounded part of) the answer within what is left of the timeout, so the
        // connection can serve the next attempt; an answer that is long or slow only
        // costs that connection, never the verdict the status already gave.
        let mut kept = Vec::new();
        let _ = tokio::time::timeout_at(deadline, async {
            let mut read = 0;
            while read < DRAIN_LIMIT {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        let room = RESPONSE_KEPT.saturating_sub(kept.len());
                        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        read += chunk.len();
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        })
        .await;
        let kept = Some(answer_text(&kept));
        if status.is_success() {
            let outcome = AttemptOutcome::Delivered {
                status: status.as_u16(),
            };
            (outcome, kept)
        } else {
            let error = format!("HTTP {status}");
            let outcome = self.failed(job, Some(status.as_u16()), error, retry_after);
            (outcome, kept)
        }
    }

    fn timeout_text(&self) -> String {
        format!(
            "no answer within forward_timeout ({} s)",
            self.options.timeout.as_secs_f64()
        )
    }

    /// A failed attempt: retried after the backoff, or no earlier than the answer's
    /// `Retry-After` (at most `forward_retry_max`), or given up if it was the last.
    fn failed(
        &self,
        job: &ForwardJob,
        status: Option<u16>,
        error: String,
        retry_after: Option<Duration>,
    ) -> AttemptOutcome {
        let failed = job.attempts.saturating_add(1);
        let retry_in = (failed < self.options.max_attempts).then(|| {
            let delay = backoff(&self.options, failed);
            match retry_after {
                Some(asked) => {
                    metrics::retry_after_honoured(&job.source);
                    delay.max(asked.min(self.options.retry_max))
                }
                None => delay,
            }
        });
        AttemptOutcome::Failed {
            status,
            error,
            retry_in,
        }
    }
}

/// The kept bytes of an answer as text: a character cut by the 1 KiB limit is dropped
/// rather than replaced, so the text never grows past the limit; other invalid bytes
/// become U+FFFD.
fn answer_text(bytes: &[u8]) -> String {
    let whole = match std::str::from_utf8(bytes) {
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        _ => bytes,
    };
    String::from_utf8_lossy(whole).into_owned()
}

/// A client error on one line, without its URL: a URL may carry credentials or a token
/// in its query, and this text goes to logs and the store.
fn error_without_url(err: reqwest::Error) -> String {
    crate::error::chain(&err.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_cut_by_the_limit_is_dropped_not_replaced() {
        let text = "aé".as_bytes();
        assert_eq!(answer_text(&text[..2]), "a");
        assert_eq!(answer_text(text), "aé");
        assert_eq!(answer_text(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn backoff_doubles_from_initial_to_max_within_twenty_percent() {
        let options = ForwardConfig {
            secret: None,
            timeout: Duration::from_secs(10),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(3600),
            max_attempts: 20,
            concurrency: 8,
            pause_after: 50,
            alert_to: None,
        };
        for (failed, base) in [
            (1, 5.0),
            (2, 10.0),
            (3, 20.0),
            (10, 2560.0),
            (11, 3600.0),
            (19, 3600.0),
            (u32::MAX, 3600.0),
        ] {
            for _ in 0..50 {
                let delay = backoff(&options, failed).as_secs_f64();
                assert!(
                    delay >= base * 0.8 - 1e-9 && delay <= base * 1.2 + 1e-9,
                    "{failed}: {delay} vs {base}"
                );
            }
        }
    }
}
