-- Every event ever received, once per (source, external_event_id). The unique index is
-- what makes "exactly once" true; the application never checks-then-inserts.
CREATE TABLE webhook_events (
    id                INTEGER PRIMARY KEY,
    source            TEXT    NOT NULL,
    external_event_id TEXT    NOT NULL,
    event_type        TEXT,
    payload           TEXT,               -- the body as received; NULL once pruned, the row stays
    fingerprint       TEXT    NOT NULL,   -- hex SHA-256 of the canonical defining fields
    conversion_id     INTEGER REFERENCES conversions (id),
    delivery_count    INTEGER NOT NULL DEFAULT 1,
    conflict_count    INTEGER NOT NULL DEFAULT 0,
    first_seen_at     TEXT    NOT NULL,
    last_seen_at      TEXT    NOT NULL
);

CREATE UNIQUE INDEX idx_webhook_events_idempotency ON webhook_events (source, external_event_id);

-- Deliveries that reused an event id with a different payload: kept for inspection,
-- never applied.
CREATE TABLE webhook_conflicts (
    id               INTEGER PRIMARY KEY,
    webhook_event_id INTEGER NOT NULL REFERENCES webhook_events (id),
    fingerprint      TEXT    NOT NULL,
    payload          TEXT    NOT NULL,
    received_at      TEXT    NOT NULL
);

CREATE INDEX idx_webhook_conflicts_event ON webhook_conflicts (webhook_event_id);
