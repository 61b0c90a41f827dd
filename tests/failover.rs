//! Surviving the loss of the database machine (SPEC §10), on a real primary with a
//! synchronous streaming standby (`common::cluster`): a crash of the primary under load
//! and a demotion without a crash, each followed by the standby's promotion. What must
//! hold: every delivery that got a 2xx is on the new primary exactly once, with its
//! conversion, and its forward is delivered; every other answer is a 503 with
//! `Retry-After`; 2xx answers resume within 5 s of the promotion (the contract's bound;
//! the measured gap is printed). The URL of the crash test lists the standby first, so
//! it also shows a standby is skipped.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::forward_app::TestApp;
use common::{post, sale};
use hooklatch::App;
use hooklatch::config::{Config, DatabaseUrl, SourceSettings};
use hooklatch::forward::{ForwardConfig, Forwarder};
use hooklatch::sources::Preset;
use hooklatch::store::{self, StoreOptions, run_blocking};
use warp::http::StatusCode;

/// The contract: 2xx answers again within this long of a new primary accepting writes.
const RESUME_WITHIN: Duration = Duration::from_secs(5);
/// Generous bound on waits for things that take milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);
/// Concurrent senders.
const SENDERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_crash_under_load_then_promotion_loses_no_acknowledged_event_or_forward() {
    let Some(cluster) = Cluster::start("failover::crash") else {
        return;
    };
    // The standby first: hooklatch must skip it while it is read-only.
    let url = cluster.url(&cluster.standby, &cluster.primary);
    let run = Run::start(&url).await;
    run.until_acknowledged(40).await;
    cluster
        .primary
        .assert_acknowledged(&run.acknowledged(), "before the crash");

    cluster.crash_primary();
    run.until_refused().await;
    let gap = run.promote_and_resume(|| cluster.promote_standby()).await;
    report("crash", gap);
    let acknowledged = run.finish().await;

    cluster
        .standby
        .assert_acknowledged(&acknowledged, "after the promotion");
    run.forwarded(&acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_demoted_primary_is_left_for_the_promoted_standby_without_a_restart() {
    let Some(cluster) = Cluster::start("failover::demotion") else {
        return;
    };
    let url = cluster.url(&cluster.primary, &cluster.standby);
    let run = Run::start(&url).await;
    run.until_acknowledged(40).await;

    // Read-only, not stopped: its connections stay open and still answer a ping.
    cluster.demote_primary();
    run.until_refused().await;
    let gap = run.promote_and_resume(|| cluster.promote_standby()).await;
    report("demotion", gap);
    let acknowledged = run.finish().await;

    cluster
        .standby
        .assert_acknowledged(&acknowledged, "after the promotion");
    run.forwarded(&acknowledged).await;
}

/// One hooklatch instance with forwarding on, and senders posting distinct sales to it
/// until told to stop.
struct Run {
    app: Arc<App>,
    target: TestApp,
    worker: hooklatch::forward::worker::ForwarderHandle,
    stop: Arc<AtomicBool>,
    /// Event id → webhook_event_id of every 2xx.
    acked: Arc<parking_lot::Mutex<HashMap<String, i64>>>,
    /// Answers other than 2xx (each checked to be a 503 with Retry-After).
    refused: Arc<AtomicU64>,
    /// When the latest 2xx was answered.
    last_ack: Arc<parking_lot::Mutex<Option<Instant>>>,
    senders: Vec<tokio::task::JoinHandle<()>>,
}

impl Run {
    async fn start(url: &str) -> Run {
        let options = StoreOptions {
            pool_size: 4,
            connect_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            ..StoreOptions::default()
        };
        let database_url = DatabaseUrl::Postgres(url.to_owned());
        let store = {
            let (url, options) = (database_url.clone(), options.clone());
            run_blocking(move || {
                let store = store::open(&url, &options)?;
                store.migrate()?;
                Ok(store)
            })
            .await
            .expect("open and migrate through the multi-host URL")
        };
        let target = TestApp::start().await;
        let mut config = Config {
            database_url,
            store: options,
            forward: ForwardConfig {
                secret: None,
                timeout: Duration::from_secs(2),
                retry_initial: Duration::from_millis(20),
                retry_max: Duration::from_millis(100),
                max_attempts: 100,
                concurrency: 4,
                pause_after: 1000,
                alert_to: None,
            },
            ..Config::default()
        };
        config.sources.insert(
            "refersion",
            SourceSettings {
                forward_to: Some(target.url()),
                ..SourceSettings::new(Preset::Refersion, Vec::new())
            },
        );
        let app = Arc::new(App::new(store, &config));
        let worker = Forwarder::new(
            app.store.clone(),
            config.forward.clone(),
            app.sources.clone(),
            app.forward_wake.clone(),
        )
        .expect("forwarder")
        .spawn();
        let mut run = Run {
            app,
            target,
            worker,
            stop: Arc::default(),
            acked: Arc::default(),
            refused: Arc::default(),
            last_ack: Arc::default(),
            senders: Vec::new(),
        };
        for sender in 0..SENDERS {
            run.senders.push(tokio::spawn(run.sender(sender)));
        }
        run
    }

    fn sender(&self, sender: usize) -> impl std::future::Future<Output = ()> + use<> {
        let (app, stop, acked, refused, last_ack) = (
            self.app.clone(),
            self.stop.clone(),
            self.acked.clone(),
            self.refused.clone(),
            self.last_ack.clone(),
        );
        async move {
            let mut n = 0;
            while !stop.load(Ordering::Acquire) {
                n += 1;
                let id = format!("s{sender}-{n}");
                let reply = post(&app, "/webhooks/refersion", &[], &sale(&id, "5.00")).await;
                if reply.status == StatusCode::OK {
                    let row = reply.body["webhook_event_id"].as_i64().expect("row id");
                    acked.lock().insert(id, row);
                    *last_ack.lock() = Some(Instant::now());
                } else {
                    assert_eq!(
                        reply.status,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "{id}: {:?}",
                        reply.body
                    );
                    assert!(
                        reply.header("retry-after").is_some(),
                        "{id}: 503 without Retry-After"
                    );
                    refused.fetch_add(1, Ordering::Relaxed);
                    // A provider would come back later; here, soon.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    fn acknowledged(&self) -> HashMap<String, i64> {
        self.acked.lock().clone()
    }

    async fn until_acknowledged(&self, n: usize) {
        wait_for("the first acknowledged deliveries", || {
            self.acked.lock().len() >= n
        })
        .await;
    }

    /// Waits until the failure shows: deliveries refused.
    async fn until_refused(&self) {
        wait_for("a 503 after the primary was lost", || {
            self.refused.load(Ordering::Relaxed) > 0
        })
        .await;
    }

    /// Runs `promote`, then waits for the first 2xx after it; returns how long after
    /// the new primary accepted writes that came.
    async fn promote_and_resume(&self, promote: impl FnOnce() + Send) -> Duration {
        std::thread::scope(|s| s.spawn(promote).join().expect("promote"));
        let promoted = Instant::now();
        wait_for("a 2xx after the promotion", || {
            self.last_ack.lock().is_some_and(|at| at > promoted)
        })
        .await;
        let gap = self.last_ack.lock().expect("acknowledged") - promoted;
        assert!(
            gap < RESUME_WITHIN,
            "2xx answers resumed {gap:?} after the promotion"
        );
        // A few more seconds' worth of load on the new primary is not needed: a short
        // tail shows the answers stay 2xx.
        let more = self.acked.lock().len() + 20;
        self.until_acknowledged(more).await;
        gap
    }

    /// Stops the senders and returns every acknowledged delivery.
    async fn finish(&self) -> HashMap<String, i64> {
        self.stop.store(true, Ordering::Release);
        wait_for("the senders to stop", || {
            self.senders.iter().all(|s| s.is_finished())
        })
        .await;
        self.acknowledged()
    }

    /// Every acknowledged event's forward arrives (at least once, by its `webhook-id`).
    async fn forwarded(self, acknowledged: &HashMap<String, i64>) {
        wait_for("every acknowledged event forwarded", || {
            let received: std::collections::HashSet<String> = self
                .target
                .received()
                .iter()
                .map(|r| r.header("webhook-id").to_owned())
                .collect();
            acknowledged
                .values()
                .all(|row| received.contains(&format!("hl_{row}")))
        })
        .await;
        for sender in &self.senders {
            assert!(sender.is_finished());
        }
        self.worker.stop().await;
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The measured gap, on the terminal even when the test passes.
fn report(case: &str, gap: Duration) {
    let _ = writeln!(
        std::io::stderr(),
        "failover::{case}: 2xx answers resumed {:.3} s after the promotion",
        gap.as_secs_f64()
    );
}
