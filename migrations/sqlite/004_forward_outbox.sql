-- The transactional outbox: one entry per processed event of a source that forwards,
-- inserted in the same transaction as the event, so an acknowledged event can never be
-- lost on its way to the merchant's app, and a duplicate never enters it.
--
-- state: 'pending' (to send at next_attempt_at), 'delivered', or 'failed' (gave up after
-- forward_max_attempts). On SQLite one process owns the worker; the lease columns are
-- kept so both stores share one shape.
CREATE TABLE forward_outbox (
    webhook_event_id INTEGER PRIMARY KEY REFERENCES webhook_events (id),
    source           TEXT    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'pending'
                             CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT    NOT NULL,      -- RFC 3339 UTC, microseconds
    lease_owner      TEXT,
    lease_until      TEXT,
    last_status      INTEGER,
    last_error       TEXT,
    delivered_at     TEXT,
    created_at       TEXT    NOT NULL
);

-- The worker's claim: due pending entries, oldest due first.
CREATE INDEX idx_forward_outbox_due ON forward_outbox (next_attempt_at)
    WHERE state = 'pending';
