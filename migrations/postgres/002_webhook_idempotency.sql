-- Every event ever received, once per (source, external_event_id). The unique index is
-- what makes "exactly once" true, across any number of hooklatch instances; the
-- application never checks-then-inserts.
CREATE TABLE webhook_events (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source            text        NOT NULL,
    external_event_id text        NOT NULL,
    event_type        text,
    payload           text,                 -- the body as received; NULL once pruned, the row stays
    fingerprint       text        NOT NULL, -- hex SHA-256 of the canonical defining fields
    conversion_id     bigint      REFERENCES conversions (id),
    delivery_count    bigint      NOT NULL DEFAULT 1,
    conflict_count    bigint      NOT NULL DEFAULT 0,
    first_seen_at     timestamptz NOT NULL,
    last_seen_at      timestamptz NOT NULL
);

CREATE UNIQUE INDEX idx_webhook_events_idempotency ON webhook_events (source, external_event_id);

-- Deliveries that reused an event id with a different payload: kept for inspection,
-- never applied.
CREATE TABLE webhook_conflicts (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    webhook_event_id bigint      NOT NULL REFERENCES webhook_events (id),
    fingerprint      text        NOT NULL,
    payload          text        NOT NULL,
    received_at      timestamptz NOT NULL
);

CREATE INDEX idx_webhook_conflicts_event ON webhook_conflicts (webhook_event_id);
