//! The store at ten million events (SPEC §8, issue 22): p50 and p99 of every admin API
//! endpoint and console page on both stores, and what a million events cost on disk.
//!
//! ```sh
//! cargo bench --bench scale                      # 10,000,000 events
//! cargo bench --bench scale -- --events 1000000
//! cargo bench --bench scale -- --events 1000000 --backends sqlite
//! ```
//!
//! Each store is filled by the generator (`common/generate.rs`: a year of mixed traffic
//! written with the store's copy statements, no HTTP, checked with `hooklatch
//! verify-totals`); PostgreSQL then gets the `VACUUM ANALYZE` autovacuum would run after
//! a bulk load. SQLite is measured and removed before PostgreSQL is filled, so the disk
//! holds one store at a time (10 M events take about 10 GB in either).
//! Each store is then served by `target/release/hooklatch` with an admin token and a
//! Shopify forward (to a closed port; pending forwards are due tomorrow, so none is
//! attempted while measuring). Every path gets one warm-up request and then 20, one at
//! a time on one keep-alive connection; p99 of 20 is the slowest (nearest rank). The
//! PostgreSQL database is dropped and the SQLite file removed at the end.

mod common;

use std::time::Duration;

use common::pg::Database;
use common::server::{Client, Server};
use common::{sqlite_url, thousands};
use time::OffsetDateTime;

const TOKEN: &str = "bench-admin-token-0123456789";
const RUNS: usize = 20;
const TARGET_MS: f64 = 50.0;

fn main() {
    let events = common::events(10_000_000);
    let backends = common::flag("--backends").unwrap_or_else(|| "sqlite,postgres".into());
    // --keep DIR: the filled SQLite file is kept in DIR and the PostgreSQL database
    // (hl_bench_keep_N) is kept too; the next run with --keep measures them again
    // without filling. Drop the database and remove the file by hand afterwards.
    let keep = common::flag("--keep").map(std::path::PathBuf::from);
    let millions = events as f64 / 1e6;
    let mut columns: Vec<(&str, Vec<Timing>)> = Vec::new();
    let mut sqlite_bytes = None;

    if backends.contains("sqlite") {
        let dir = common::work_dir();
        let path = match &keep {
            Some(kept) => {
                std::fs::create_dir_all(kept).expect("the --keep directory");
                kept.join(format!("scale-{events}.db"))
            }
            None => dir.path().join("scale.db"),
        };
        if !path.exists() {
            common::generate_sqlite(&path, events);
        }
        let url = sqlite_url(&path);
        columns.push(("SQLite", measure(&url, events)));
        // After the server's own start (migrations, checkpoint on close).
        let bytes: u64 = ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
            .map(|m| m.len())
            .sum();
        println!(
            "SQLite file: {:.0} MB, {:.0} MB per million events",
            bytes as f64 / 1e6,
            bytes as f64 / 1e6 / millions
        );
        sqlite_bytes = Some(bytes);
        // The SQLite file goes before PostgreSQL fills: both at once need twice the disk.
    }

    let mut pg_sizes = None;
    let pg = match (backends.contains("postgres"), &keep) {
        (false, _) => None,
        (true, Some(_)) => Database::open_or_create(&format!("keep_{events}")),
        (true, None) => Database::create("scale").map(|db| (db, false)),
    };
    if let Some((db, existed)) = pg {
        if existed {
            println!("PostgreSQL: reusing {}", db.name);
        } else {
            // The generator streams the rows with COPY, indexes built after
            // (`common/load.rs`); `cargo bench --bench copy` times `hooklatch copy`.
            let filled = common::generate::Generator::new(events).fill_postgres(&db.url, true);
            println!("generated: {filled}");
            let check = common::hooklatch(&db.url, &["verify-totals"]);
            assert!(
                check.output.status.success(),
                "verify-totals: {}",
                String::from_utf8_lossy(&check.output.stdout)
            );
            println!(
                "verify-totals: {}",
                String::from_utf8_lossy(&check.output.stdout).trim()
            );
            // What autovacuum runs soon after a bulk load.
            db.query("VACUUM ANALYZE");
        }
        pg_sizes = Some(pg_table_sizes(&db));
        columns.push(("PostgreSQL", measure(&db.url, events)));
    }

    println!();
    println!(
        "{} events; p50 / p99 of {RUNS} requests after one warm-up, ms; over {TARGET_MS} ms marked **",
        thousands(events as f64)
    );
    println!();
    let header: String = columns
        .iter()
        .map(|(name, _)| format!(" {name} p50 | {name} p99 |"))
        .collect();
    println!("| path |{header}");
    println!("|---|{}", "---:|---:|".repeat(columns.len()));
    let rows = columns.first().map_or(0, |(_, t)| t.len());
    for i in 0..rows {
        let label = &columns[0].1[i].label;
        let cells: String = columns
            .iter()
            .map(|(_, timings)| {
                let t = &timings[i];
                format!(" {} | {} |", ms(t.p50), ms(t.p99))
            })
            .collect();
        println!("| {label} |{cells}");
    }
    println!();
    if let Some(bytes) = sqlite_bytes {
        println!(
            "SQLite: {:.0} MB per million events (the file, indexes included)",
            bytes as f64 / 1e6 / millions
        );
    }
    if let Some(sizes) = pg_sizes {
        println!();
        println!(
            "| PostgreSQL table | rows | table MB per million events | indexes MB per million events |"
        );
        println!("|---|---:|---:|---:|");
        for (table, rows, heap, indexes) in sizes {
            println!(
                "| {table} | {} | {:.0} | {:.0} |",
                thousands(rows as f64),
                heap as f64 / 1e6 / millions,
                indexes as f64 / 1e6 / millions
            );
        }
    }
}

fn ms(value: f64) -> String {
    if value > TARGET_MS {
        format!("**{value:.1}**")
    } else {
        format!("{value:.1}")
    }
}

struct Timing {
    label: String,
    p50: f64,
    p99: f64,
}

/// Serves the store and times every path.
fn measure(database_url: &str, events: u64) -> Vec<Timing> {
    let server = Server::start(&[
        ("DATABASE_URL", database_url.to_owned()),
        ("HOOKLATCH_ADMIN_TOKEN", TOKEN.to_owned()),
        (
            "HOOKLATCH_FORWARD_TO_SHOPIFY",
            "http://127.0.0.1:9/".to_owned(),
        ),
    ]);
    let mut client = Client::connect(server.addr).expect("connect");
    let bearer = format!("Bearer {TOKEN}");
    let api = [("Authorization", bearer.as_str())];
    let login = client.request(
        "POST",
        "/admin/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("token={TOKEN}"),
    );
    let cookie = login
        .headers
        .iter()
        .find(|(name, _)| name == "set-cookie")
        .and_then(|(_, value)| value.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie from /admin/login ({})", login.status))
        .to_owned();
    let console = [("Cookie", cookie.as_str())];

    // Events to show: the newest of each kind, as a person would click on them, and an
    // old sale, for the exact lookups (a walk from the newest end would find a new one
    // at once).
    let mut pick = |query: &str| -> (String, String) {
        let answer = client.get(&format!("/admin/api/events?limit=1&{query}"), &api);
        let body: serde_json::Value = serde_json::from_slice(&answer.body).expect("an events page");
        let item = &body["items"][0];
        let text = |v: &serde_json::Value| v.as_str().expect("a text field").to_owned();
        (text(&item["source"]), text(&item["event_id"]))
    };
    let encode = |(source, id): &(String, String)| {
        let part = |t: &str| {
            percent_encoding::utf8_percent_encode(t, percent_encoding::NON_ALPHANUMERIC).to_string()
        };
        format!("{}/{}", part(source), part(id))
    };
    let first_day = (OffsetDateTime::now_utc() - time::Duration::days(364))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("rfc3339");
    let old_sale = pick(&format!("event_type=sale&until={first_day}"));
    let old_order = old_sale.1.replace("ref_evt_", "ORDER_");
    let old_id = old_sale.1.clone();
    let sale = encode(&pick("event_type=sale"));
    let forwarded = encode(&pick("forward=failed"));
    let conflicted = encode(&pick("conflicted=true"));
    // A page half a year deep, as a cursor handed out there would say.
    let middle = OffsetDateTime::now_utc() - time::Duration::days(182);
    let at = middle
        .format(hooklatch::model::clock::STORED_TIMESTAMP)
        .expect("a timestamp");
    let deep = hooklatch::read::Cursor {
        at: hooklatch::read::Timestamp::parse(&at, "cursor").expect("a timestamp"),
        id: (events / 2) as i64,
    }
    .encode();
    let day = (
        (middle.format(&time::format_description::well_known::Rfc3339)).expect("rfc3339"),
        ((middle + time::Duration::days(1)).format(&time::format_description::well_known::Rfc3339))
            .expect("rfc3339"),
    );

    let paths: Vec<(String, String, bool)> = [
        ("stats", "/admin/api/stats".to_string(), true),
        (
            "conversions/summary",
            "/admin/api/conversions/summary".into(),
            true,
        ),
        ("events", "/admin/api/events".into(), true),
        (
            "events, limit=500",
            "/admin/api/events?limit=500".into(),
            true,
        ),
        (
            "events?source=stripe",
            "/admin/api/events?source=stripe".into(),
            true,
        ),
        (
            "events?event_type=orders/paid",
            "/admin/api/events?event_type=orders%2Fpaid".into(),
            true,
        ),
        (
            "events?event_type=NEW_CONVERSION",
            "/admin/api/events?event_type=NEW_CONVERSION".into(),
            true,
        ),
        (
            "events?event_type=(none sent)",
            "/admin/api/events?event_type=nobody.sends.this".into(),
            true,
        ),
        (
            "events?event_id=… (a year old)",
            format!("/admin/api/events?event_id={old_id}"),
            true,
        ),
        (
            "events?since=…&until=… (one day)",
            format!("/admin/api/events?since={}&until={}", day.0, day.1),
            true,
        ),
        (
            "events?duplicated=true",
            "/admin/api/events?duplicated=true".into(),
            true,
        ),
        (
            "events?duplicated=false",
            "/admin/api/events?duplicated=false".into(),
            true,
        ),
        (
            "events?conflicted=true",
            "/admin/api/events?conflicted=true".into(),
            true,
        ),
        (
            "events?conflicted=false",
            "/admin/api/events?conflicted=false".into(),
            true,
        ),
        (
            "events?forward=pending",
            "/admin/api/events?forward=pending".into(),
            true,
        ),
        (
            "events?forward=failed",
            "/admin/api/events?forward=failed".into(),
            true,
        ),
        (
            "events?forward=delivered",
            "/admin/api/events?forward=delivered".into(),
            true,
        ),
        (
            "events?source=github&duplicated=true",
            "/admin/api/events?source=github&duplicated=true".into(),
            true,
        ),
        (
            "events?source=refersion&conflicted=true",
            "/admin/api/events?source=refersion&conflicted=true".into(),
            true,
        ),
        (
            "events?cursor=… (half a year deep)",
            format!("/admin/api/events?cursor={deep}"),
            true,
        ),
        (
            "events/{source}/{id} (a sale, its conversion)",
            format!("/admin/api/events/{sale}"),
            true,
        ),
        (
            "events/{source}/{id} (a failed forward, its attempts)",
            format!("/admin/api/events/{forwarded}"),
            true,
        ),
        (
            "events/{source}/{id} (kept conflicts)",
            format!("/admin/api/events/{conflicted}"),
            true,
        ),
        ("conversions", "/admin/api/conversions".into(), true),
        (
            "conversions?status=APPROVED",
            "/admin/api/conversions?status=APPROVED".into(),
            true,
        ),
        (
            "conversions?status=DENIED",
            "/admin/api/conversions?status=DENIED".into(),
            true,
        ),
        (
            "conversions?status=PENDING",
            "/admin/api/conversions?status=PENDING".into(),
            true,
        ),
        (
            "conversions?currency=GBP",
            "/admin/api/conversions?currency=GBP".into(),
            true,
        ),
        (
            "conversions?order_id=… (a year old)",
            format!("/admin/api/conversions?order_id={old_order}"),
            true,
        ),
        ("rejections", "/admin/api/rejections".into(), true),
        ("forwarding", "/admin/api/forwarding".into(), true),
        ("console: overview `/admin/`", "/admin/".into(), false),
        ("console: events", "/admin/events".into(), false),
        (
            "console: events, duplicated",
            "/admin/events?duplicated=true".into(),
            false,
        ),
        (
            "console: events, conflicted",
            "/admin/events?conflicted=true".into(),
            false,
        ),
        (
            "console: events, forward failed",
            "/admin/events?forward=failed".into(),
            false,
        ),
        ("console: one event", format!("/admin/events/{sale}"), false),
        (
            "console: one event with attempts",
            format!("/admin/events/{forwarded}"),
            false,
        ),
        ("console: conversions", "/admin/conversions".into(), false),
        (
            "console: conversions, APPROVED",
            "/admin/conversions?status=APPROVED".into(),
            false,
        ),
        ("console: rejections", "/admin/rejections".into(), false),
        ("console: forwarding", "/admin/forwarding".into(), false),
    ]
    .into_iter()
    .map(|(label, path, is_api)| (label.to_owned(), path, is_api))
    .collect();

    let mut timings = Vec::new();
    for (label, path, is_api) in paths {
        let headers: &[(&str, &str)] = if is_api { &api } else { &console };
        let warm = client.get(&path, headers);
        assert_eq!(
            warm.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&warm.body)
        );
        let mut samples: Vec<f64> = (0..RUNS)
            .map(|_| {
                let answer = client.get(&path, headers);
                assert_eq!(answer.status, 200, "{path}");
                answer.elapsed.as_secs_f64() * 1e3
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        let timing = Timing {
            label: format!("`{label}`"),
            p50: samples[RUNS / 2 - 1],
            p99: samples[RUNS - 1],
        };
        eprintln!(
            "{label}: p50 {:.1} ms, p99 {:.1} ms",
            timing.p50, timing.p99
        );
        timings.push(timing);
    }
    server.stop();
    std::thread::sleep(Duration::from_millis(200));
    timings
}

/// `(table, rows, table bytes, index bytes)` of every table, largest first.
fn pg_table_sizes(db: &Database) -> Vec<(String, u64, u64, u64)> {
    db.query(
        "SELECT c.relname, c.reltuples::bigint, pg_table_size(c.oid), pg_indexes_size(c.oid)
           FROM pg_class c
          WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace
          ORDER BY pg_total_relation_size(c.oid) DESC",
    )
    .into_iter()
    .map(|row| {
        let n = |i: usize| {
            row.get(i)
                .cloned()
                .flatten()
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
                .max(0) as u64
        };
        (row[0].clone().unwrap_or_default(), n(1), n(2), n(3))
    })
    .collect()
}
