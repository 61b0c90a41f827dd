//! Writing the generator's rows fast (issue 22: a 10,000,000-event store in minutes, not
//! an hour). What makes a bulk load slow is keeping every secondary index in order while
//! rows arrive, most of them keyed in random order (provider ids), and on PostgreSQL a
//! statement and a trigger call per row. So each loader:
//!
//! - drops the secondary indexes and builds them again after the rows are in, from their
//!   own stored definitions (`sqlite_master.sql`, `pg_indexes.indexdef`), and checks
//!   that the set afterwards is the set the migrations made;
//! - writes in large transactions (`CHUNK` events each);
//! - on PostgreSQL, streams each table with `COPY … FROM STDIN` with the triggers off for
//!   its own session (`session_replication_role = replica`: the totals triggers and the
//!   foreign-key checks; the generator's references are right by construction);
//! - then rebuilds the totals from the rows through the store (`recompute_totals`) and
//!   moves PostgreSQL's id sequences past the rows (`finish_copy`), as `copy` does.
//!
//! The rows are the ones `copy` would write (ids kept), so the store ends as one that
//! received the traffic would: the benches check it with `hooklatch verify-totals`.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use hooklatch::store::transfer::{CopyRow, Table};

use super::generate::{Filled, Generator};

/// Fills the migrated, empty SQLite file at `path`.
pub fn sqlite(generator: Generator, path: &Path, progress: bool) -> Filled {
    let began = Instant::now();
    let total = generator.total();
    let (chunks, generator) = generator.spawn();
    let mut conn = rusqlite::Connection::open(path).expect("open the SQLite file");
    // Bulk settings for this connection only: nothing else writes the file meanwhile,
    // and a crash mid-load leaves a bench file that is thrown away anyway.
    conn.execute_batch(
        "PRAGMA synchronous = OFF; PRAGMA cache_size = -1000000; PRAGMA temp_store = MEMORY;
         PRAGMA threads = 2; PRAGMA locking_mode = EXCLUSIVE;",
    )
    .expect("bulk pragmas");
    let journal: String = conn
        .query_row("PRAGMA journal_mode = OFF", [], |row| row.get(0))
        .expect("journal off");
    assert_eq!(journal, "off", "the load runs without a journal");
    let indexes = Indexes::drop_all(&mut conn, SQLITE_INDEXES);
    let mut written = 0u64;
    for chunk in chunks {
        let tx = conn.transaction().expect("a transaction");
        for (table, rows) in chunk.tables() {
            let mut insert = tx.prepare_cached(sqlite_insert(table)).expect("the insert");
            for row in &rows {
                let changed = insert
                    .execute(rusqlite::params_from_iter(row.iter()))
                    .unwrap_or_else(|e| panic!("insert into {}: {e}", table.name()));
                assert_eq!(changed, 1, "{}: the store is not empty", table.name());
            }
        }
        tx.commit().expect("commit");
        written = super::generate::report(written, total, progress, began);
    }
    let rows_done = began.elapsed().as_secs_f64();
    let indexes = indexes.build(&mut conn, SQLITE_INDEXES);
    let journal: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .expect("journal back");
    assert_eq!(journal, "wal");
    drop(conn);
    let built = began.elapsed().as_secs_f64();
    let store = super::open(&super::sqlite_url(path));
    finish(generator, store.as_ref(), began, rows_done, built, indexes)
}

/// How a loader reaches its store's indexes: list `(name, CREATE INDEX …)` by name, and
/// run one statement.
struct IndexAccess<C> {
    list: fn(&mut C) -> Vec<(String, String)>,
    run: fn(&mut C, &str),
}

const SQLITE_INDEXES: IndexAccess<rusqlite::Connection> = IndexAccess {
    list: |conn| sqlite_indexes(conn),
    run: |conn, sql| {
        conn.execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    },
};

const PG_INDEXES: IndexAccess<postgres::Client> = IndexAccess {
    list: pg_indexes,
    run: |client, sql| {
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    },
};

/// The migrations' own indexes, dropped for the load and built again once the rows are
/// in: one sorted build is far cheaper than growing each index row by row.
struct Indexes(Vec<(String, String)>);

impl Indexes {
    fn drop_all<C>(conn: &mut C, access: IndexAccess<C>) -> Indexes {
        let indexes = (access.list)(conn);
        for (name, _) in &indexes {
            (access.run)(conn, &format!("DROP INDEX {name}"));
        }
        Indexes(indexes)
    }

    /// Builds them again and checks the store has exactly the migrations' indexes;
    /// answers how many there are.
    fn build<C>(self, conn: &mut C, access: IndexAccess<C>) -> usize {
        for (_, sql) in &self.0 {
            (access.run)(conn, sql);
        }
        assert_eq!(
            (access.list)(conn),
            self.0,
            "the indexes after the load are the migrations' own"
        );
        self.0.len()
    }
}

/// `(name, CREATE INDEX …)` of every index the migrations made, by name; the indexes
/// SQLite makes itself for a UNIQUE or PRIMARY KEY constraint have no SQL and stay.
fn sqlite_indexes(conn: &rusqlite::Connection) -> Vec<(String, String)> {
    let mut stmt = conn
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
        .expect("the index list");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .expect("the index list")
        .map(|r| r.expect("an index"))
        .collect()
}

/// The store's own insert of each table: what `hooklatch copy` writes on SQLite.
fn sqlite_insert(table: Table) -> &'static str {
    match table {
        Table::Conversions => include_str!("../../sql/sqlite/copy_insert_conversions.sql"),
        Table::Events => include_str!("../../sql/sqlite/copy_insert_webhook_events.sql"),
        Table::Conflicts => include_str!("../../sql/sqlite/copy_insert_webhook_conflicts.sql"),
        Table::Outbox => include_str!("../../sql/sqlite/copy_insert_forward_outbox.sql"),
        Table::Attempts => include_str!("../../sql/sqlite/copy_insert_forward_attempts.sql"),
        Table::Sources => include_str!("../../sql/sqlite/copy_insert_forward_sources.sql"),
    }
}

/// Fills the (migrated, empty) PostgreSQL database at `url`.
pub fn postgres(generator: Generator, url: &str, progress: bool) -> Filled {
    let began = Instant::now();
    drop(super::open(url));
    let total = generator.total();
    let (chunks, generator) = generator.spawn();
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .batch_execute(
            "SET session_replication_role = replica; SET synchronous_commit = off;
             SET maintenance_work_mem = '512MB'; SET statement_timeout = 0;",
        )
        .expect("bulk settings");
    let indexes = Indexes::drop_all(&mut client, PG_INDEXES);
    let mut written = 0u64;
    let mut text = String::new();
    for chunk in chunks {
        let mut tx = client.transaction().expect("a transaction");
        for (table, rows) in chunk.tables() {
            if rows.is_empty() {
                continue;
            }
            let (columns, outbox_seen) = pg_columns(table);
            text.clear();
            for row in &rows {
                copy_line(&mut text, row, outbox_seen);
            }
            let mut copy = tx
                .copy_in(&format!("COPY {} ({columns}) FROM STDIN", table.name()))
                .expect("COPY");
            copy.write_all(text.as_bytes())
                .unwrap_or_else(|e| panic!("COPY {}: {e}", table.name()));
            let count = copy
                .finish()
                .unwrap_or_else(|e| panic!("COPY {}: {e}", table.name()));
            assert_eq!(count, rows.len() as u64, "{}", table.name());
        }
        tx.commit().expect("commit");
        written = super::generate::report(written, total, progress, began);
    }
    let rows_done = began.elapsed().as_secs_f64();
    let indexes = indexes.build(&mut client, PG_INDEXES);
    drop(client);
    let built = began.elapsed().as_secs_f64();
    let store = super::open(url);
    store.finish_copy().expect("the id sequences");
    finish(generator, store.as_ref(), began, rows_done, built, indexes)
}

/// After the rows and indexes of either store: the totals rebuilt from the rows, and
/// how long each phase took.
fn finish(
    generator: std::thread::JoinHandle<Filled>,
    store: &dyn hooklatch::store::Transfer,
    began: Instant,
    rows_done: f64,
    built: f64,
    indexes: usize,
) -> Filled {
    let mut filled = generator.join().expect("the generator thread");
    store
        .recompute_totals()
        .unwrap_or_else(|e| panic!("recompute totals: {e}"));
    filled.seconds = began.elapsed().as_secs_f64();
    filled.phases = format!(
        "rows {rows_done:.0} s, {indexes} indexes {:.0} s, totals {:.0} s",
        built - rows_done,
        filled.seconds - built
    );
    filled
}

/// `(name, indexdef)` of every index that backs no constraint (a primary or unique key
/// stays: it cannot be dropped alone, and it checks the rows as they arrive), by name.
fn pg_indexes(client: &mut postgres::Client) -> Vec<(String, String)> {
    client
        .query(
            "SELECT i.indexname, i.indexdef
               FROM pg_indexes i
               JOIN pg_class c ON c.relname = i.indexname
                              AND c.relnamespace = 'public'::regnamespace
              WHERE i.schemaname = 'public'
                AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)
              ORDER BY i.indexname",
            &[],
        )
        .expect("the index list")
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// A table's columns in the copy row's order, as the store's copy insert names them, and
/// whether the outbox's `event_seen_at` (migration 010) follows them: the copy insert
/// reads it from the event, and COPY cannot, so it is written out here. The generator
/// writes each outbox entry at its event's first_seen_at (`created_at`, the row's last
/// column), which is what the event's time is.
fn pg_columns(table: Table) -> (String, bool) {
    let sql = match table {
        Table::Conversions => include_str!("../../sql/postgres/copy_insert_conversions.sql"),
        Table::Events => include_str!("../../sql/postgres/copy_insert_webhook_events.sql"),
        Table::Conflicts => include_str!("../../sql/postgres/copy_insert_webhook_conflicts.sql"),
        Table::Outbox => include_str!("../../sql/postgres/copy_insert_forward_outbox.sql"),
        Table::Attempts => include_str!("../../sql/postgres/copy_insert_forward_attempts.sql"),
        Table::Sources => include_str!("../../sql/postgres/copy_insert_forward_sources.sql"),
    };
    let head = format!("INSERT INTO {} (", table.name());
    let start = sql.find(&head).expect("the copy insert's column list") + head.len();
    let columns = &sql[start..start + sql[start..].find(')').expect("the column list's end")];
    let outbox_seen = columns.ends_with(", event_seen_at");
    (columns.to_owned(), outbox_seen)
}

/// One row in COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_line(text: &mut String, row: &CopyRow, outbox_seen: bool) {
    let mut first = true;
    let seen = outbox_seen.then(|| row.last().cloned().flatten());
    for value in row.iter().chain(seen.iter()) {
        if !first {
            text.push('\t');
        }
        first = false;
        match value {
            None => text.push_str("\\N"),
            Some(v) => {
                for ch in v.chars() {
                    match ch {
                        '\\' => text.push_str("\\\\"),
                        '\t' => text.push_str("\\t"),
                        '\n' => text.push_str("\\n"),
                        '\r' => text.push_str("\\r"),
                        c => text.push(c),
                    }
                }
            }
        }
    }
    text.push('\n');
}
