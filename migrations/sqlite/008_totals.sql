-- Totals kept as events arrive (SPEC §8), so `stats`, `conversions/summary`, the overview
-- and the Conversions page read a handful of rows instead of every event.
--
-- The writer thread adds what one batch changed, one row per source and per (status,
-- currency) in the same transaction as the batch's events (src/store/sqlite/totals.rs).
-- Amounts are exact decimal text, added in Rust like every other SQLite sum; the store
-- fills conversion_totals from the rows when it finds it empty beside conversions
-- (right after this migration). `hooklatch verify-totals` recounts and compares.
CREATE TABLE source_totals (
    source       TEXT    PRIMARY KEY,
    events       INTEGER NOT NULL,
    deliveries   INTEGER NOT NULL,
    conflicts    INTEGER NOT NULL,
    last_seen_at TEXT    NOT NULL
);

INSERT INTO source_totals (source, events, deliveries, conflicts, last_seen_at)
SELECT source, count(*), sum(delivery_count), sum(conflict_count), max(last_seen_at)
  FROM webhook_events
 GROUP BY source;

-- One row per (status, currency), NULLs included; only the writer writes it, looking a
-- group up with IS, so no unique index is needed (a few dozen rows at most).
CREATE TABLE conversion_totals (
    status            TEXT,
    currency          TEXT,
    count             INTEGER NOT NULL,
    sale_amount       TEXT    NOT NULL,
    commission_amount TEXT    NOT NULL
);

-- Filters that match few rows, each served by its own partial index, walked newest
-- first like idx_webhook_events_seen.
CREATE INDEX idx_webhook_events_duplicated ON webhook_events (first_seen_at, id)
    WHERE delivery_count > 1;
CREATE INDEX idx_webhook_events_conflicted ON webhook_events (first_seen_at, id)
    WHERE conflict_count > 0;
CREATE INDEX idx_conversions_status ON conversions (status, created_at, id);

-- The prunable index was keyed on last_seen_at, which every duplicate count moves, so
-- each count rewrote an index entry. Keyed on first_seen_at, which never changes, it is
-- only touched when a payload is cleared: a row last seen before the cutoff was first
-- seen before it too, so walking first_seen_at finds every prunable row.
DROP INDEX idx_webhook_events_prunable;
CREATE INDEX idx_webhook_events_prunable ON webhook_events (first_seen_at)
    WHERE payload IS NOT NULL;
