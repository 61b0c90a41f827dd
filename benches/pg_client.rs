//! What the synchronous `postgres` client costs hooklatch per new event, against
//! `tokio-postgres` awaited on the runtime's own workers: issue 22's proposal, measured
//! before it is made.
//!
//! ```sh
//! cargo bench --bench pg_client                          # 40,000 new events per run, 64 tasks
//! cargo bench --bench pg_client -- --events 100000 --clients 16
//! ```
//!
//! Both make the same call, `sql/postgres/process.sql` (one round trip), for the same
//! kind of event (Refersion sales prepared as the server prepares them, before the clock
//! starts), from `--clients` tasks on a two-worker tokio runtime (the server's on this
//! machine), over 16 connections with one call in flight on each:
//! - **sync client (today)**: `Receiving::process_async` of hooklatch's own
//!   `PostgresStore`: a permit, `spawn_blocking`, the r2d2 pool, the sync client driving
//!   its private runtime to the answer, the deadline and its cancel slot;
//! - **tokio-postgres**: one `Client` per connection, its connection task on the same
//!   runtime, the prepared statement awaited on the worker that asked.
//!
//! No HTTP: what differs is the client. "hooklatch CPU" is this process's CPU time per
//! event, "backend CPU" that of the PostgreSQL backends serving the database. The two
//! clients take turns, twice each, so a store that grows or a neighbour that wakes up
//! weighs on both.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::pg::{BackendSampler, Database};
use common::{flag, process_ticks, sales, thousands, us_per_event};
use hooklatch::config::DatabaseUrl;
use hooklatch::model::NewEvent;
use hooklatch::store::{ProcessCall, Store, StoreOptions};

/// The receive call, as the store sends it.
const PROCESS: &str = include_str!("../sql/postgres/process.sql");
const CONNECTIONS: usize = 16;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Client {
    Sync,
    Async,
}

impl Client {
    fn name(self) -> &'static str {
        match self {
            Client::Sync => "sync `postgres` (today)",
            Client::Async => "`tokio-postgres`",
        }
    }
}

fn main() {
    let events = common::events(40_000) as usize;
    let clients: usize =
        flag("--clients").map_or(64, |c| c.parse().expect("--clients takes a number"));
    let Some(db) = Database::create("pgclient") else {
        return;
    };
    let options = StoreOptions {
        pool_size: CONNECTIONS as u32,
        statement_timeout: Duration::from_secs(30),
        connect_timeout: Duration::from_secs(10),
        ..StoreOptions::default()
    };
    let store = hooklatch::store::open(&DatabaseUrl::Postgres(db.url.clone()), &options)
        .expect("open the bench database");
    store.migrate().expect("migrate the bench database");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let pool = runtime.block_on(AsyncPool::connect(&db.url));
    let pid = std::process::id().to_string();

    println!(
        "| client | run | new events | seconds | events/s | hooklatch CPU µs/event | backend CPU µs/event |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for run in 1..=2 {
        for client in [Client::Sync, Client::Async] {
            let lanes = prepared(client, run, events, clients);
            let backends = BackendSampler::start(&db.name);
            let before = process_ticks(&pid);
            let started = Instant::now();
            runtime.block_on(async {
                let tasks: Vec<_> = lanes
                    .into_iter()
                    .enumerate()
                    .map(|(task, lane)| {
                        let (store, pool) = (store.clone(), pool.clone());
                        tokio::spawn(async move {
                            for event in lane {
                                match client {
                                    Client::Sync => sync_call(&store, event).await,
                                    Client::Async => pool.call(task, &event).await,
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("a bench task");
                }
            });
            let seconds = started.elapsed().as_secs_f64();
            let ours = process_ticks(&pid) - before;
            let theirs = backends.finish();
            println!(
                "| {} | {run} | {} | {seconds:.1} | {} | {:.0} | {:.0} |",
                client.name(),
                thousands(events as f64),
                thousands(events as f64 / seconds),
                us_per_event(ours, events),
                us_per_event(theirs, events),
            );
        }
    }
}

/// `events` new Refersion sales, as the server would prepare them, dealt to `clients`
/// tasks.
fn prepared(client: Client, run: usize, events: usize, clients: usize) -> Vec<Vec<NewEvent>> {
    let tag = match client {
        Client::Sync => "sync",
        Client::Async => "async",
    };
    sales::deal(sales::refersion(&format!("{tag}-{run}"), events), clients)
}

/// Today's path, as the HTTP layer calls it.
async fn sync_call(store: &Arc<dyn Store>, event: NewEvent) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let outcome = store.clone().process_async(event, deadline).await;
    assert!(
        matches!(outcome, Ok((hooklatch::model::Outcome::Processed(_), _))),
        "{outcome:?}"
    );
}

/// 16 `tokio-postgres` connections, each used by one task at a time (as r2d2 lends one
/// connection to one call), with the receive call prepared once on each.
#[derive(Clone)]
struct AsyncPool(Arc<Vec<tokio::sync::Mutex<Connection>>>);

struct Connection {
    client: tokio_postgres::Client,
    process: tokio_postgres::Statement,
}

impl AsyncPool {
    async fn connect(url: &str) -> AsyncPool {
        let mut connections = Vec::new();
        for _ in 0..CONNECTIONS {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect with tokio-postgres");
            tokio::spawn(connection);
            let process = client.prepare(PROCESS).await.expect("prepare the call");
            connections.push(tokio::sync::Mutex::new(Connection { client, process }));
        }
        AsyncPool(Arc::new(connections))
    }

    async fn call(&self, task: usize, event: &NewEvent) {
        let call = ProcessCall::new(event);
        let params = call.params();
        let connection = self.0[task % CONNECTIONS].lock().await;
        let row = connection
            .client
            .query_one(&connection.process, &params)
            .await
            .expect("the receive call");
        let outcome: String = row.get(0);
        assert_eq!(outcome, "processed");
    }
}
