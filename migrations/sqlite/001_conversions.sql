-- Conversions: one per (source, external_event_id), created in the same transaction as
-- the event that carries the sale. Amounts are exact decimal text, never REAL.
CREATE TABLE conversions (
    id                INTEGER PRIMARY KEY,  -- no AUTOINCREMENT: ids are identities, not counters
    source            TEXT    NOT NULL,
    external_event_id TEXT    NOT NULL,
    order_id          TEXT    NOT NULL,
    commission_amount TEXT    NOT NULL,
    sale_amount       TEXT    NOT NULL,
    currency          TEXT,
    tracking_id       TEXT,
    created_at        TEXT    NOT NULL     -- RFC 3339 UTC, microseconds, written by the app
);

CREATE UNIQUE INDEX idx_conversions_idempotency ON conversions (source, external_event_id);
