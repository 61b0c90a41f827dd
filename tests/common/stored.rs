//! What a test reads straight from the database, through the backend's own client and
//! the statements in `sql/<backend>/`, instead of through the store under test: row
//! counts and a conversion as stored. No production caller needs these, so they are not
//! store methods.

use hooklatch::config::DatabaseUrl;
use hooklatch::model::{Amount, EventId, Source};
use rust_decimal::Decimal;

/// Row counts of events, conversions and conflicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub events: i64,
    pub conversions: i64,
    pub conflicts: i64,
}

/// A conversion row as stored; field names are the column names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConversion {
    pub id: i64,
    pub source: String,
    /// The event that created the conversion.
    pub external_event_id: String,
    /// Refersion's conversion id; `None` for a seed-style sale.
    pub external_conversion_id: Option<String>,
    pub order_id: Option<String>,
    pub commission_amount: Amount,
    pub sale_amount: Amount,
    pub currency: Option<String>,
    pub tracking_id: Option<String>,
    pub status: Option<String>,
    pub affiliate_id: Option<String>,
    pub affiliate_code: Option<String>,
    /// RFC 3339 UTC with microseconds, like every stored timestamp.
    pub source_updated_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

mod sql {
    pub const SQLITE_TOTALS: &str = include_str!("../../sql/sqlite/totals.sql");
    pub const POSTGRES_TOTALS: &str = include_str!("../../sql/postgres/totals.sql");
    pub const SQLITE_CONVERSION: &str = include_str!("../../sql/sqlite/get_conversion.sql");
    pub const POSTGRES_CONVERSION: &str = include_str!("../../sql/postgres/get_conversion.sql");
}

/// Row counts of the database at `url`.
pub fn totals(url: &DatabaseUrl) -> Totals {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open SQLite");
            conn.query_row(sql::SQLITE_TOTALS, [], |row| {
                Ok(Totals {
                    events: row.get(0)?,
                    conversions: row.get(1)?,
                    conflicts: row.get(2)?,
                })
            })
            .expect("totals")
        }
        DatabaseUrl::Postgres(url) => on_plain_thread(|| {
            let mut client = super::admin_client(url).expect("connect");
            let row = client.query_one(sql::POSTGRES_TOTALS, &[]).expect("totals");
            Totals {
                events: row.get(0),
                conversions: row.get(1),
                conflicts: row.get(2),
            }
        }),
        DatabaseUrl::SqliteMemory => panic!("an in-memory store cannot be reached from outside"),
    }
}

/// The conversion the event `(source, id)` is linked to, or else the one it created (a
/// conversion without its event would show a half-written step).
pub fn conversion(url: &DatabaseUrl, source: &Source, id: &EventId) -> Option<StoredConversion> {
    let (source, id) = (source.as_str(), id.as_str());
    match url {
        DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).expect("open SQLite");
            let amount = |text: String| Amount::from_decimal(text.parse().expect("stored amount"));
            let mut stmt = conn.prepare(sql::SQLITE_CONVERSION).expect("prepare");
            let mut rows = stmt.query([source, id]).expect("conversion");
            let row = rows.next().expect("conversion")?;
            let text = |i: usize| -> String { row.get(i).expect("column") };
            let opt = |i: usize| -> Option<String> { row.get(i).expect("column") };
            Some(StoredConversion {
                id: row.get(0).expect("column"),
                source: text(1),
                external_event_id: text(2),
                external_conversion_id: opt(3),
                order_id: opt(4),
                commission_amount: amount(text(5)),
                sale_amount: amount(text(6)),
                currency: opt(7),
                tracking_id: opt(8),
                status: opt(9),
                affiliate_id: opt(10),
                affiliate_code: opt(11),
                source_updated_at: opt(12),
                created_at: text(13),
                updated_at: text(14),
            })
        }
        DatabaseUrl::Postgres(url) => on_plain_thread(|| {
            let mut client = super::admin_client(url).expect("connect");
            let row = client
                .query_opt(sql::POSTGRES_CONVERSION, &[&source, &id])
                .expect("conversion")?;
            Some(StoredConversion {
                id: row.get(0),
                source: row.get(1),
                external_event_id: row.get(2),
                external_conversion_id: row.get(3),
                order_id: row.get(4),
                commission_amount: Amount::from_decimal(row.get::<_, Decimal>(5)),
                sale_amount: Amount::from_decimal(row.get::<_, Decimal>(6)),
                currency: row.get(7),
                tracking_id: row.get(8),
                status: row.get(9),
                affiliate_id: row.get(10),
                affiliate_code: row.get(11),
                source_updated_at: row.get(12),
                created_at: row.get(13),
                updated_at: row.get(14),
            })
        }),
        DatabaseUrl::SqliteMemory => panic!("an in-memory store cannot be reached from outside"),
    }
}

/// The sync client must neither run nor be dropped on a runtime thread.
fn on_plain_thread<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(work).join().expect("SQL thread"))
}
