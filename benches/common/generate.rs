//! Makes N realistic events without HTTP: rows built as `hooklatch copy` moves them (ids
//! kept), handed in chunks to a loader (`load.rs`: SQLite with the store's own
//! `sql/sqlite/copy_insert_*.sql`, PostgreSQL with `COPY`, secondary indexes built after
//! the rows), then the totals rebuilt from the rows through the store
//! (`recompute_totals`), as `copy` does. So the store ends as one that received the
//! traffic would: `hooklatch verify-totals` finds no drift (the benches check it).
//!
//! Each event's fingerprint, event id, type and conversion come from the source's own
//! preset (`Preset::prepare` on the generated body and headers), so a retry of a
//! generated event over HTTP is a duplicate, not a conflict. The mix, per event:
//!
//! - `refersion` 50 %: seed-style sales (each makes a conversion, `status` null), and
//!   every 12th a real conversion delivery (`NEW_CONVERSION`, PENDING), of which 4 in 5
//!   are later moved by an `APPROVED_CONVERSION` or `DENIED_CONVERSION` event that points
//!   at the same conversion;
//! - `shopify` 25 % (orders/create, orders/paid, orders/fulfilled, refunds/create), the
//!   one source that forwards: every event has an outbox row, delivered (with its one
//!   attempt), 1 in 100 failed (3 attempts kept: a merchant's app that was down for
//!   days leaves tens of thousands), the newest 200 pending;
//! - `stripe` 15 %, `github` 10 %;
//! - 15 % of events delivered 2 to 4 times (`delivery_count`), 1 in 500 with one or two
//!   kept conflicting deliveries;
//! - `first_seen_at` spread evenly over the year before now, in id order, as arrivals are.
//!
//! Bodies are 250-700 bytes. Ids are random where providers' are (Shopify and GitHub
//! UUIDs, Stripe `evt_…`), so the unique index is written in random order as it is in
//! production.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use hooklatch::json::parse_object;
use hooklatch::model::clock::STORED_TIMESTAMP;
use hooklatch::model::{NewConversion, NewEvent, Source};
use hooklatch::sources::Preset;
use hooklatch::store::transfer::{CopyRow, Table};
use time::OffsetDateTime;
use warp::http::{HeaderMap, HeaderName, HeaderValue};

/// Events per transaction.
const CHUNK: u64 = 50_000;
/// Every how many events a Refersion conversion delivery (the rest are sales).
const LIFECYCLE_EVERY: u64 = 12;
/// How many events after its creation a conversion is approved or denied.
const MOVE_AFTER: u64 = 5_000;
/// Newest Shopify forwards still pending.
const PENDING: u64 = 200;
/// One Shopify forward in this many failed.
const FAILED_ONE_IN: u32 = 100;
const CONFLICT_EVERY: u64 = 500;

/// What a fill wrote.
#[derive(Debug, Default, Clone)]
pub struct Filled {
    pub events: u64,
    pub conversions: u64,
    pub conflicts: u64,
    pub outbox: u64,
    pub attempts: u64,
    pub seconds: f64,
    /// Where the time went (rows, index builds, totals).
    pub phases: String,
}

impl std::fmt::Display for Filled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events, {} conversions, {} conflicts, {} outbox rows, {} attempts in {:.1} s ({:.0} events/s; {})",
            self.events,
            self.conversions,
            self.conflicts,
            self.outbox,
            self.attempts,
            self.seconds,
            self.events as f64 / self.seconds.max(1e-9),
            self.phases
        )
    }
}

/// A conversion moved later by another event.
struct Move {
    at_event: u64,
    conversion_id: u64,
    refersion_id: u64,
    approved: bool,
    created: String,
    updated: String,
    total: String,
    commission: String,
    currency: String,
}

/// Rows of one chunk, per table.
#[derive(Default)]
pub struct Chunk {
    conversions: Vec<CopyRow>,
    events: Vec<CopyRow>,
    conflicts: Vec<CopyRow>,
    outbox: Vec<CopyRow>,
    attempts: Vec<CopyRow>,
}

impl Chunk {
    /// Every table's rows, in the order their references need.
    pub fn tables(self) -> [(Table, Vec<CopyRow>); 5] {
        [
            (Table::Conversions, self.conversions),
            (Table::Events, self.events),
            (Table::Conflicts, self.conflicts),
            (Table::Outbox, self.outbox),
            (Table::Attempts, self.attempts),
        ]
    }
}

/// Events written so far, a line per million.
pub fn report(written: u64, total: u64, progress: bool, began: Instant) -> u64 {
    let now = written + CHUNK.min(total - written);
    if progress && written / 1_000_000 != now / 1_000_000 {
        eprintln!(
            "generated {now} events ({:.0} s)",
            began.elapsed().as_secs_f64()
        );
    }
    now
}

/// One generated delivery, before the store's preparation.
struct Delivery {
    source: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// The conversion this event moves (a lifecycle event), instead of making one.
    moves: Option<u64>,
}

pub struct Generator {
    total: u64,
    rng: fastrand::Rng,
    start: OffsetDateTime,
    step_us: i64,
    next_conversion: u64,
    next_conflict: u64,
    next_attempt: u64,
    moves: VecDeque<Move>,
    filled: Filled,
}

const PLAIN_TIME: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

impl Generator {
    pub fn new(total: u64) -> Generator {
        let year = Duration::from_secs(365 * 24 * 3600);
        // Whole seconds, so a Refersion body's "YYYY-MM-DD HH:MM:SS" is an exact time.
        let now = OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .expect("0 ns");
        Generator {
            total,
            rng: fastrand::Rng::with_seed(22),
            start: now - year,
            step_us: (year.as_micros() as i64 / total.max(1) as i64).max(2),
            next_conversion: 1,
            next_conflict: 1,
            next_attempt: 1,
            moves: VecDeque::new(),
            filled: Filled::default(),
        }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    /// Writes every event into the (migrated, empty) SQLite file at `path`, then rebuilds
    /// the totals from the rows through the store.
    pub fn fill_sqlite(self, path: &Path, progress: bool) -> Filled {
        super::load::sqlite(self, path, progress)
    }

    /// Writes every event into the (migrated, empty) PostgreSQL database at `url`, then
    /// rebuilds the totals from the rows through the store.
    pub fn fill_postgres(self, url: &str, progress: bool) -> Filled {
        super::load::postgres(self, url, progress)
    }

    /// Chunks of rows made on a thread of their own while the caller writes.
    pub fn spawn(
        mut self,
    ) -> (
        std::sync::mpsc::Receiver<Chunk>,
        std::thread::JoinHandle<Filled>,
    ) {
        let (send, receive) = std::sync::mpsc::sync_channel::<Chunk>(2);
        let generator = std::thread::spawn(move || {
            let mut id = 1;
            while id <= self.total {
                let end = (id + CHUNK).min(self.total + 1);
                let mut chunk = Chunk::default();
                for n in id..end {
                    self.event(n, &mut chunk);
                }
                if send.send(chunk).is_err() {
                    break;
                }
                id = end;
            }
            self.filled
        });
        (receive, generator)
    }

    fn at(&self, n: u64, offset_us: i64) -> OffsetDateTime {
        self.start + time::Duration::microseconds(self.step_us * n as i64 + offset_us)
    }

    fn time(&self, n: u64, offset_us: i64) -> String {
        stored(self.at(n, offset_us))
    }

    fn event(&mut self, n: u64, chunk: &mut Chunk) {
        let due = self.moves.front().is_some_and(|m| m.at_event <= n);
        let delivery = if due {
            let m = self.moves.pop_front().expect("a due move");
            lifecycle_move(&m)
        } else {
            match self.rng.u32(0..100) {
                0..50 if n.is_multiple_of(LIFECYCLE_EVERY) => self.new_conversion(n),
                0..50 => self.sale(n),
                50..75 => self.shopify(n),
                75..90 => self.stripe(n),
                _ => self.github(n),
            }
        };
        let event = prepare(&delivery);
        // A lifecycle move arrives at the time its conversion row says it moved.
        let jitter = match delivery.moves {
            Some(_) => 0,
            None => self.rng.i64(0..self.step_us / 2),
        };
        let first_seen_at = self.time(n, jitter);
        let duplicated = self.rng.u32(0..100) < 15;
        let delivery_count: i64 = if duplicated { self.rng.i64(2..=4) } else { 1 };
        let last_seen_at = if duplicated {
            let later = self.step_us / 2 + self.rng.i64(1..600_000_000);
            self.time(n, later)
        } else {
            first_seen_at.clone()
        };
        let conversion_id = match (delivery.moves, &event.conversion) {
            (Some(moved), _) => Some(moved.to_string()),
            (None, Some(c)) => Some(self.conversion(n, &event, c, &first_seen_at, chunk)),
            (None, None) => None,
        };
        let conflict_count = if n.is_multiple_of(CONFLICT_EVERY) {
            self.conflicts(n, &delivery, chunk)
        } else {
            0
        };
        if delivery.source == "shopify" {
            self.forward(n, &first_seen_at, chunk);
        }
        chunk.events.push(vec![
            Some(n.to_string()),
            Some(delivery.source.to_owned()),
            Some(event.event_id.as_str().to_owned()),
            event.event_type.clone(),
            Some(event.payload),
            Some(event.fingerprint),
            conversion_id,
            Some(delivery_count.to_string()),
            Some(conflict_count.to_string()),
            Some(first_seen_at),
            Some(last_seen_at),
        ]);
        self.filled.events += 1;
    }

    /// The conversion row a new event makes; a Refersion conversion that a later event
    /// will move is written as that event leaves it.
    fn conversion(
        &mut self,
        n: u64,
        event: &NewEvent,
        c: &NewConversion,
        seen: &str,
        chunk: &mut Chunk,
    ) -> String {
        let id = self.next_conversion;
        self.next_conversion += 1;
        let mut status = c.status.clone();
        let mut updated_at = seen.to_owned();
        let mut source_updated_at = c.source_updated_at.clone();
        let at_event = n + MOVE_AFTER;
        if let Some(refersion_id) = &c.external_conversion_id
            && at_event <= self.total
            && self.rng.u32(0..5) != 0
        {
            let approved = self.rng.u32(0..5) != 0;
            let updated = self.at(at_event, -60_000_000);
            status = Some(if approved { "APPROVED" } else { "DENIED" }.into());
            updated_at = self.time(at_event, 0);
            source_updated_at = Some(stored(updated));
            self.moves.push_back(Move {
                at_event,
                conversion_id: id,
                refersion_id: refersion_id.parse().expect("a numeric Refersion id"),
                approved,
                created: plain(self.at(n, 0)),
                updated: plain(updated),
                total: c.sale_amount.to_string(),
                commission: c.commission_amount.to_string(),
                currency: c.currency.clone().unwrap_or_else(|| "USD".into()),
            });
        }
        chunk.conversions.push(vec![
            Some(id.to_string()),
            Some(event.source.as_str().to_owned()),
            Some(event.event_id.as_str().to_owned()),
            c.order_id.clone(),
            Some(c.commission_amount.to_string()),
            Some(c.sale_amount.to_string()),
            c.currency.clone(),
            c.tracking_id.clone(),
            Some(seen.to_owned()),
            c.external_conversion_id.clone(),
            status,
            c.affiliate_id.clone(),
            c.affiliate_code.clone(),
            source_updated_at,
            Some(updated_at),
        ]);
        self.filled.conversions += 1;
        id.to_string()
    }

    /// One or two later deliveries of the same id with another amount, kept.
    fn conflicts(&mut self, n: u64, delivery: &Delivery, chunk: &mut Chunk) -> i64 {
        let count = self.rng.i64(1..=2);
        let original = prepare(delivery).fingerprint;
        for k in 0..count {
            // Another order id (a defining field of a Refersion sale) and another note
            // (every other preset fingerprints the whole body).
            let body = delivery
                .body
                .replacen("\"note\":\"\"", &format!("\"note\":\"changed {k}\""), 1)
                .replacen("\"order_id\":\"", &format!("\"order_id\":\"{k}"), 1)
                .replacen("\"total\":\"", &format!("\"total\":\"{}", k + 1), 1);
            let other = prepare(&Delivery {
                body,
                headers: delivery.headers.clone(),
                ..*delivery
            });
            assert_ne!(other.fingerprint, original, "a conflict must differ");
            chunk.conflicts.push(vec![
                Some(self.next_conflict.to_string()),
                Some(n.to_string()),
                Some(other.fingerprint),
                Some(other.payload),
                Some(self.time(n, self.step_us / 2 + 1_000_000 * (k + 1))),
            ]);
            self.next_conflict += 1;
            self.filled.conflicts += 1;
        }
        count
    }

    /// The outbox row of a forwarded event, and the attempts kept for it.
    fn forward(&mut self, n: u64, seen: &str, chunk: &mut Chunk) {
        let pending = n + PENDING * 4 > self.total;
        let failed = !pending && self.rng.u32(0..FAILED_ONE_IN) == 0;
        let (state, attempts, next, status, error, delivered) = if pending {
            // Due tomorrow: a server started on this store does not send them meanwhile.
            let tomorrow = stored(OffsetDateTime::now_utc() + time::Duration::days(1));
            ("pending", 1, tomorrow, Some("503"), Some("HTTP 503"), None)
        } else if failed {
            (
                "failed",
                20,
                self.time(n, 3_600_000_000),
                Some("500"),
                Some("HTTP 500"),
                None,
            )
        } else {
            let at = self.time(n, 800_000);
            ("delivered", 1, at.clone(), Some("200"), None, Some(at))
        };
        chunk.outbox.push(vec![
            Some(n.to_string()),
            Some("shopify".into()),
            Some(state.into()),
            Some(attempts.to_string()),
            Some(next),
            None,
            None,
            status.map(str::to_owned),
            error.map(str::to_owned),
            delivered,
            Some(seen.to_owned()),
        ]);
        self.filled.outbox += 1;
        let kept = if failed { 3 } else { 1 };
        for k in 0..kept {
            chunk.attempts.push(vec![
                Some(self.next_attempt.to_string()),
                Some(n.to_string()),
                Some(self.time(n, 800_000 + 60_000_000 * k)),
                status.map(str::to_owned),
                Some(self.rng.u32(20..400).to_string()),
                error.map(str::to_owned),
                Some(
                    if status == Some("200") {
                        "ok"
                    } else {
                        "upstream error"
                    }
                    .into(),
                ),
            ]);
            self.next_attempt += 1;
            self.filled.attempts += 1;
        }
    }

    fn amounts(&mut self) -> (String, String) {
        let cents = self.rng.u64(1_000..50_000);
        let sale = format!("{}.{:02}", cents / 100, cents % 100);
        let commission = cents / 10;
        (
            sale,
            format!("{}.{:02}", commission / 100, commission % 100),
        )
    }

    fn currency(&mut self) -> &'static str {
        match self.rng.u32(0..10) {
            0..7 => "USD",
            7..9 => "EUR",
            _ => "GBP",
        }
    }

    fn sale(&mut self, n: u64) -> Delivery {
        let (sale, commission) = self.amounts();
        let currency = self.currency();
        let tracking = self.rng.u32(0..5_000);
        Delivery {
            source: "refersion",
            headers: Vec::new(),
            body: format!(
                r#"{{"event_type":"sale","event_id":"ref_evt_{n}","order_id":"ORDER_{n}","commission_amount":{commission},"sale_amount":{sale},"currency":"{currency}","tracking_id":"T{tracking:05}","customer":{{"email":"buyer{n}@example.com","country":"US"}},"note":""}}"#
            ),
            moves: None,
        }
    }

    fn new_conversion(&mut self, n: u64) -> Delivery {
        let (total, commission) = self.amounts();
        let currency = self.currency();
        let affiliate = self.rng.u32(1..2_000);
        let created = plain(self.at(n, 0));
        Delivery {
            source: "refersion",
            headers: vec![("Refersion-Topic", "NEW_CONVERSION".into())],
            body: format!(
                r#"{{"id":{n},"created":"{created}","status":"PENDING","total":"{total}","commission_total":"{commission}","currency":"{currency}","order_id":"R{n}","affiliate":{{"id":{affiliate},"code":"aff{affiliate}"}},"note":""}}"#
            ),
            moves: None,
        }
    }

    fn shopify(&mut self, n: u64) -> Delivery {
        let topic = [
            "orders/create",
            "orders/paid",
            "orders/fulfilled",
            "refunds/create",
        ][self.rng.usize(0..4)];
        let (total, _) = self.amounts();
        let currency = self.currency();
        let items = self.rng.u32(1..5);
        Delivery {
            source: "shopify",
            headers: vec![
                ("X-Shopify-Event-Id", uuid(&mut self.rng)),
                ("X-Shopify-Topic", topic.into()),
            ],
            body: format!(
                r#"{{"id":{order},"admin_graphql_api_id":"gid://shopify/Order/{order}","email":"buyer{n}@example.com","created_at":"{created}","currency":"{currency}","total_price":"{total}","subtotal_price":"{total}","total_tax":"0.00","financial_status":"paid","fulfillment_status":null,"line_items":[{{"id":{item},"quantity":{items},"sku":"SKU-{sku}","price":"{total}"}}],"shipping_address":{{"city":"Springfield","country_code":"US","zip":"12345"}},"note":""}}"#,
                order = 5_000_000_000u64 + n,
                item = 9_000_000_000u64 + n,
                sku = self.rng.u32(0..10_000),
                created = stored(self.at(n, 0)),
            ),
            moves: None,
        }
    }

    fn stripe(&mut self, n: u64) -> Delivery {
        let kind = [
            "payment_intent.succeeded",
            "charge.succeeded",
            "invoice.paid",
            "charge.refunded",
        ][self.rng.usize(0..4)];
        let cents = self.rng.u64(500..100_000);
        let id: String = (0..24).map(|_| self.rng.alphanumeric()).collect();
        Delivery {
            source: "stripe",
            headers: Vec::new(),
            body: format!(
                r#"{{"id":"evt_{id}","object":"event","api_version":"2024-06-20","created":{created},"type":"{kind}","livemode":true,"pending_webhooks":1,"request":{{"id":"req_{n}","idempotency_key":null}},"data":{{"object":{{"id":"pi_{n}","object":"payment_intent","amount":{cents},"currency":"usd","customer":"cus_{customer}","status":"succeeded"}}}},"note":""}}"#,
                created = self.at(n, 0).unix_timestamp(),
                customer = self.rng.u32(0..100_000),
            ),
            moves: None,
        }
    }

    fn github(&mut self, n: u64) -> Delivery {
        let kind = ["push", "pull_request", "issues", "workflow_run"][self.rng.usize(0..4)];
        Delivery {
            source: "github",
            headers: vec![
                ("X-GitHub-Delivery", uuid(&mut self.rng)),
                ("X-GitHub-Event", kind.into()),
            ],
            body: format!(
                r#"{{"action":"opened","number":{number},"repository":{{"id":{repo},"full_name":"acme/shop-{repo}","private":true}},"sender":{{"login":"dev{sender}","id":{sender}}},"ref":"refs/heads/main","note":""}}"#,
                number = n % 10_000,
                repo = self.rng.u32(0..50),
                sender = self.rng.u32(0..500),
            ),
            moves: None,
        }
    }
}

/// The event that approves or denies a conversion made earlier.
fn lifecycle_move(m: &Move) -> Delivery {
    let (topic, status) = match m.approved {
        true => ("APPROVED_CONVERSION", "APPROVED"),
        false => ("DENIED_CONVERSION", "DENIED"),
    };
    Delivery {
        source: "refersion",
        headers: vec![("Refersion-Topic", topic.into())],
        body: format!(
            r#"{{"id":{id},"created":"{created}","updated":"{updated}","status":"{status}","total":"{total}","commission_total":"{commission}","currency":"{currency}","order_id":"R{id}","note":""}}"#,
            id = m.refersion_id,
            created = m.created,
            updated = m.updated,
            total = m.total,
            commission = m.commission,
            currency = m.currency,
        ),
        moves: Some(m.conversion_id),
    }
}

/// The event a delivery of this body makes, as the server would prepare it.
fn prepare(delivery: &Delivery) -> NewEvent {
    let source = Source::parse(delivery.source).expect("a source name");
    let mut headers = HeaderMap::new();
    for (name, value) in &delivery.headers {
        headers.insert(
            HeaderName::from_static(leak_lower(name)),
            HeaderValue::from_str(value).expect("a header value"),
        );
    }
    let body = parse_object(delivery.body.as_bytes()).expect("a generated body is JSON");
    Preset::for_source(delivery.source)
        .prepare(&source, &headers, delivery.body.as_bytes(), &body)
        .unwrap_or_else(|e| panic!("generated {} body refused: {e}", delivery.source))
}

/// Header names as `HeaderName::from_static` wants them: lower case.
fn leak_lower(name: &str) -> &'static str {
    match name {
        "Refersion-Topic" => "refersion-topic",
        "X-Shopify-Event-Id" => "x-shopify-event-id",
        "X-Shopify-Topic" => "x-shopify-topic",
        "X-GitHub-Delivery" => "x-github-delivery",
        "X-GitHub-Event" => "x-github-event",
        other => panic!("no lower-case name for {other}"),
    }
}

fn uuid(rng: &mut fastrand::Rng) -> String {
    let a = rng.u128(..);
    let h = format!("{a:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn stored(at: OffsetDateTime) -> String {
    at.format(STORED_TIMESTAMP).expect("a stored timestamp")
}

fn plain(at: OffsetDateTime) -> String {
    at.format(PLAIN_TIME).expect("a plain timestamp")
}
