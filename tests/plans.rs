//! The query plans behind the README's index table: each filter that matches few rows is
//! served by its own index (`EXPLAIN QUERY PLAN` on SQLite, `EXPLAIN` on PostgreSQL,
//! over 20,000 events with 1 % duplicated, 0.2 % conflicted, 1 % failed forwards, and
//! 2 % approved conversions, analysed), the failed-forward list is one range in order
//! with no sort (migration 010), and the counts read the kept totals, never the rows.

mod common;

use common::{Backend, TestDb, admin_client};
use hooklatch::config::DatabaseUrl;

/// (statement, parameters as SQL literals, the index its plan must use).
const CASES: &[(&str, &[&str], &str)] = &[
    (
        "list_events_duplicated",
        &[
            "NULL",
            "NULL",
            "NULL",
            "'1970-01-01T00:00:00.000000Z'",
            "1",
            "NULL",
            "NULL",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_webhook_events_duplicated",
    ),
    (
        "list_events_conflicted",
        &[
            "NULL",
            "NULL",
            "NULL",
            "'1970-01-01T00:00:00.000000Z'",
            "NULL",
            "1",
            "NULL",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_webhook_events_conflicted",
    ),
    (
        "list_events",
        &[
            "NULL",
            "NULL",
            "NULL",
            "'1970-01-01T00:00:00.000000Z'",
            "NULL",
            "NULL",
            "NULL",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_webhook_events_seen",
    ),
    (
        "list_conversions_by_status",
        &[
            "'APPROVED'",
            "NULL",
            "NULL",
            "'1970-01-01T00:00:00.000000Z'",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_conversions_status",
    ),
    (
        "list_events_by_type",
        &[
            "NULL",
            "'nobody.sends.this'",
            "NULL",
            "'1970-01-01T00:00:00.000000Z'",
            "NULL",
            "NULL",
            "NULL",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_webhook_events_type",
    ),
    (
        "list_conversions_by_order",
        &[
            "NULL",
            "NULL",
            "'ORDER_1'",
            "'1970-01-01T00:00:00.000000Z'",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_conversions_order",
    ),
    (
        "list_events_by_forward",
        &[
            "NULL",
            "NULL",
            "NULL",
            "'1970-01-01T00:00:00.000000Z'",
            "NULL",
            "NULL",
            "'failed'",
            "'9999-12-31T00:00:00.000000Z'",
            "9223372036854775807",
            "50",
        ],
        "idx_forward_outbox_listed",
    ),
    (
        "prune_events",
        &["'2000-01-01T00:00:00.000000Z'", "1000"],
        "idx_webhook_events_prunable",
    ),
];

/// Lists whose page must be one index range in order, never a sort of every match:
/// failed forwards can be tens of thousands (migration 010).
const UNSORTED: &[&str] = &["list_events_by_forward"];

/// Statements that must not read webhook_events or conversions at all.
const TOTALS: &[&str] = &["source_totals", "conversion_totals"];

const FILL_SQLITE: &str = "
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 20000)
INSERT INTO webhook_events (source, external_event_id, event_type, payload, fingerprint,
                            delivery_count, conflict_count, first_seen_at, last_seen_at)
SELECT 'refersion', 'e' || n, 'sale', '{}', 'f',
       CASE WHEN n % 100 = 0 THEN 2 ELSE 1 END, CASE WHEN n % 500 = 0 THEN 1 ELSE 0 END,
       strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1700000000 + n, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1700000000 + n, 'unixepoch')
FROM g;
WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000)
INSERT INTO conversions (source, external_event_id, commission_amount, sale_amount, status,
                         created_at, updated_at)
SELECT 'refersion', 'c' || n, '1.00', '10.00',
       CASE WHEN n % 50 = 0 THEN 'APPROVED' ELSE 'PENDING' END,
       strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1700000000 + n, 'unixepoch'),
       strftime('%Y-%m-%dT%H:%M:%S.000000Z', 1700000000 + n, 'unixepoch')
FROM g;
INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at,
                            created_at, event_seen_at)
SELECT id, source, CASE WHEN id % 100 = 0 THEN 'failed' ELSE 'delivered' END, 1,
       first_seen_at, first_seen_at, first_seen_at
FROM webhook_events;
ANALYZE;";

const FILL_POSTGRES: &str = "
INSERT INTO webhook_events (source, external_event_id, event_type, payload, fingerprint,
                            delivery_count, conflict_count, first_seen_at, last_seen_at)
SELECT 'refersion', 'e' || n, 'sale', '{}', 'f',
       CASE WHEN n % 100 = 0 THEN 2 ELSE 1 END, CASE WHEN n % 500 = 0 THEN 1 ELSE 0 END,
       to_timestamp(1700000000 + n), to_timestamp(1700000000 + n)
FROM generate_series(1, 20000) n;
INSERT INTO conversions (source, external_event_id, commission_amount, sale_amount, status,
                         created_at, updated_at)
SELECT 'refersion', 'c' || n, 1.00, 10.00,
       CASE WHEN n % 50 = 0 THEN 'APPROVED' ELSE 'PENDING' END,
       to_timestamp(1700000000 + n), to_timestamp(1700000000 + n)
FROM generate_series(1, 5000) n;
INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at,
                            created_at, event_seen_at)
SELECT id, source, CASE WHEN id % 100 = 0 THEN 'failed' ELSE 'delivered' END, 1,
       first_seen_at, first_seen_at, first_seen_at
FROM webhook_events;
ANALYZE;";

fn statement(backend: &str, name: &str) -> String {
    let path = format!("{}/sql/{backend}/{name}.sql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `?N` / `$N` replaced by the literals, highest number first (so `$10` is not `$1`).
fn with_literals(sql: &str, marker: char, literals: &[&str]) -> String {
    let mut sql = sql.to_owned();
    for (n, literal) in literals.iter().enumerate().rev() {
        sql = sql.replace(&format!("{marker}{}", n + 1), literal);
    }
    sql
}

#[test]
fn sqlite_filters_that_match_few_rows_use_their_index() {
    let Some(db) = TestDb::fresh(Backend::Sqlite, "plans") else {
        return;
    };
    let DatabaseUrl::Sqlite(path) = &db.url else {
        unreachable!()
    };
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(FILL_SQLITE).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details: Vec<String> = stmt
            .query_map([], |row| row.get::<_, String>(3))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        details.join("\n")
    };
    for (name, literals, index) in CASES {
        let sql = with_literals(&statement("sqlite", name), '?', literals);
        let plan = plan(&sql);
        assert!(plan.contains(index), "{name} should use {index}:\n{plan}");
        assert!(
            !plan.contains("SCAN e\n") && !plan.lines().any(|l| l == "SCAN webhook_events"),
            "{name} scans the table:\n{plan}"
        );
        if UNSORTED.contains(name) {
            assert!(!plan.contains("TEMP B-TREE"), "{name} sorts:\n{plan}");
        }
    }
    for name in TOTALS {
        let plan = plan(&statement("sqlite", name));
        assert!(
            !plan.contains("webhook_events") && !plan.contains("conversions "),
            "{name} reads the rows:\n{plan}"
        );
    }
}

#[test]
fn postgres_filters_that_match_few_rows_use_their_index() {
    let Some(db) = TestDb::fresh(Backend::Postgres, "plans") else {
        return;
    };
    let DatabaseUrl::Postgres(url) = &db.url else {
        unreachable!()
    };
    let url = url.clone();
    std::thread::spawn(move || {
        let mut client = admin_client(&url).unwrap();
        client.batch_execute(FILL_POSTGRES).unwrap();
        let mut plan = |sql: &str| -> String {
            client
                .query(&format!("EXPLAIN {sql}"), &[])
                .unwrap()
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        };
        for (name, literals, index) in CASES {
            // PostgreSQL's booleans are true/false, not 1/0.
            let literals: Vec<&str> = literals
                .iter()
                .enumerate()
                .map(|(i, l)| match (*l, i) {
                    ("1", 4 | 5) if name.starts_with("list_events") => "true",
                    _ => l,
                })
                .collect();
            let sql = with_literals(&statement("postgres", name), '$', &literals);
            let plan = plan(&sql);
            assert!(plan.contains(index), "{name} should use {index}:\n{plan}");
            assert!(
                !plan.contains("Seq Scan on webhook_events")
                    && !plan.contains("Seq Scan on conversions"),
                "{name} scans the table:\n{plan}"
            );
            if UNSORTED.contains(name) {
                assert!(!plan.contains("Sort"), "{name} sorts:\n{plan}");
            }
        }
        for name in TOTALS {
            let plan = plan(&statement("postgres", name));
            assert!(
                !plan.contains("on webhook_events") && !plan.contains("on conversions "),
                "{name} reads the rows:\n{plan}"
            );
        }
    })
    .join()
    .unwrap();
}
