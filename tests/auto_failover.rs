//! Losing the database machine with a failover manager in charge (SPEC §10, README "When
//! the database machine fails"): the real binary on the URL a pg_auto_failover monitor
//! gives (`common::formation`), deliveries flowing, then the primary's machine lost
//! (`kill -9` of its `pg_autoctl` and its PostgreSQL) and the monitor left to promote the
//! secondary on its own. What must hold: every delivery that got a 2xx is on the new
//! primary exactly once, with its conversion; every other answer is a 503 with
//! `Retry-After`; 2xx answers resume within 5 s of the new primary accepting writes (the
//! contract's bound). The gaps are printed, not asserted.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::binary::{Server, post_sale, wait_until};
use common::formation::Formation;

/// The contract: 2xx answers again within this long of a new primary accepting writes.
const RESUME_WITHIN: Duration = Duration::from_secs(5);
/// The monitor's detection and promotion, with its tightened settings, take seconds;
/// this only bounds a hung test.
const FAILOVER_LIMIT: Duration = Duration::from_secs(40);
/// Generous bound on waits for things that take milliseconds.
const PATIENCE: Duration = Duration::from_secs(30);
/// Concurrent senders.
const SENDERS: usize = 4;

#[test]
fn the_monitor_promotes_the_secondary_on_its_own_and_no_acknowledged_event_is_lost() {
    let Some(mut formation) = Formation::start("auto_failover") else {
        return;
    };
    let server = Server::start(&formation.url(), &[]);
    let load = Load::start(server.addr);
    load.until_acknowledged(40);
    formation.nodes[0]
        .node
        .assert_acknowledged(&load.acknowledged(), "before the loss");

    let lost = formation.lose(0);
    load.until_refused();
    let writable = formation.until_writable(1, FAILOVER_LIMIT);
    let resumed = load.first_ack_after(lost, FAILOVER_LIMIT);
    let after_writable = resumed.saturating_duration_since(writable);
    assert!(
        after_writable < RESUME_WITHIN,
        "2xx answers resumed {after_writable:?} after the new primary accepted writes"
    );
    // A short tail shows the answers stay 2xx on the new primary.
    let more = load.acknowledged().len() + 20;
    load.until_acknowledged(more);
    let (acknowledged, refused) = load.finish();

    formation.nodes[1]
        .node
        .assert_acknowledged(&acknowledged, "after the failover");
    let states = formation.states();
    assert!(
        states
            .iter()
            .any(|(name, _, goal)| name == "node2" && (goal == "wait_primary" || goal == "primary")),
        "the monitor did not make node2 the primary: {states:?}"
    );
    let _ = writeln!(
        std::io::stderr(),
        "auto_failover: {} acknowledged, {refused} answered 503; the new primary took writes \
         {:.3} s after the loss; 2xx answers (to requests sent after the loss) resumed {:.3} s after it, {:.3} s after it \
         took writes",
        acknowledged.len(),
        (writable - lost).as_secs_f64(),
        (resumed - lost).as_secs_f64(),
        after_writable.as_secs_f64()
    );
    drop(server);
}

/// What the senders saw.
#[derive(Default)]
struct Tally {
    /// Event id → webhook_event_id of every 2xx, with when its request was sent and
    /// when it was answered.
    acked: HashMap<String, (i64, Instant, Instant)>,
    /// 503 answers with Retry-After.
    refused: u64,
    /// Anything else: the test fails on it.
    wrong: Vec<String>,
}

/// Senders posting distinct sales to the binary over fresh connections until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<parking_lot::Mutex<Tally>>,
    senders: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(parking_lot::Mutex::new(Tally::default()));
        let senders = (0..SENDERS)
            .map(|sender| {
                let (stop, tally) = (stop.clone(), tally.clone());
                std::thread::spawn(move || send(addr, sender, &stop, &tally))
            })
            .collect();
        Load {
            stop,
            tally,
            senders,
        }
    }

    fn acknowledged(&self) -> HashMap<String, i64> {
        self.tally
            .lock()
            .acked
            .iter()
            .map(|(id, (row, ..))| (id.clone(), *row))
            .collect()
    }

    fn until_acknowledged(&self, n: usize) {
        self.until("acknowledged deliveries", PATIENCE, |t| t.acked.len() >= n);
    }

    /// Waits until the loss shows: deliveries refused.
    fn until_refused(&self) {
        self.until("a 503 after the primary was lost", PATIENCE, |t| {
            t.refused > 0
        });
    }

    /// Waits for the first 2xx to a request sent after `at`, and returns when it was
    /// answered. (A request sent before may still be answered 2xx after `at`: it was
    /// committed before the loss.)
    fn first_ack_after(&self, at: Instant, limit: Duration) -> Instant {
        let first = |t: &Tally| {
            t.acked
                .values()
                .filter(|(_, sent, _)| *sent > at)
                .map(|(_, _, answered)| *answered)
                .min()
        };
        self.until("a 2xx after the failover", limit, |t| first(t).is_some());
        first(&self.tally.lock()).expect("a 2xx after the failover")
    }

    fn until(&self, what: &str, limit: Duration, done: impl Fn(&Tally) -> bool) {
        let held = wait_until(limit, || {
            let tally = self.tally.lock();
            assert!(
                tally.wrong.is_empty(),
                "unexpected answers: {:?}",
                tally.wrong
            );
            done(&tally)
        });
        assert!(held, "waited {limit:?} for {what}");
    }

    /// Stops the senders; returns every acknowledged delivery and the number of 503s.
    fn finish(self) -> (HashMap<String, i64>, u64) {
        self.stop.store(true, Ordering::Release);
        for sender in self.senders {
            sender.join().expect("sender");
        }
        let tally = self.tally.lock();
        assert!(
            tally.wrong.is_empty(),
            "unexpected answers: {:?}",
            tally.wrong
        );
        let acknowledged = tally
            .acked
            .iter()
            .map(|(id, (row, ..))| (id.clone(), *row))
            .collect();
        (acknowledged, tally.refused)
    }
}

/// One sender: a new sale per request; a refused one is not sent again (a provider
/// would, later; its retry would be a first delivery, which this test already covers).
fn send(addr: SocketAddr, sender: usize, stop: &AtomicBool, tally: &parking_lot::Mutex<Tally>) {
    let mut n = 0;
    while !stop.load(Ordering::Acquire) {
        n += 1;
        let id = format!("s{sender}-{n}");
        let sent = Instant::now();
        let answer = post_sale(addr, &id);
        let answered = Instant::now();
        match answer {
            Ok(a) if a.status == 200 => {
                let row = a.json()["webhook_event_id"].as_i64();
                let mut tally = tally.lock();
                match row {
                    Some(row) => {
                        tally.acked.insert(id, (row, sent, answered));
                    }
                    None => tally
                        .wrong
                        .push(format!("{id}: 200 without a row: {}", a.body)),
                }
            }
            Ok(a) if a.status == 503 && a.header("retry-after").is_some() => {
                tally.lock().refused += 1;
                // A provider would come back later; here, soon.
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(a) => tally
                .lock()
                .wrong
                .push(format!("{id}: {} {:?} {}", a.status, a.headers, a.body)),
            Err(e) => tally.lock().wrong.push(format!("{id}: {e}")),
        }
    }
}
