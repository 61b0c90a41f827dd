-- Indexes for the admin API, the console and the commands (README "Operating it" says
-- which index serves which filter, with the query plans that checked it).
--
-- Lists are newest first and paged on (first_seen_at, id) / (created_at, id), so each
-- page is one index range walked backwards that stops at the page size.
CREATE INDEX idx_webhook_events_seen ON webhook_events (first_seen_at, id);
CREATE INDEX idx_webhook_events_source_seen ON webhook_events (source, first_seen_at, id);
-- `event_id=` without a source: the idempotency index leads with source.
CREATE INDEX idx_webhook_events_event_id ON webhook_events (external_event_id);
-- Pruning walks only rows that still hold a payload, oldest first.
CREATE INDEX idx_webhook_events_prunable ON webhook_events (last_seen_at)
    WHERE payload IS NOT NULL;
CREATE INDEX idx_conversions_created ON conversions (created_at, id);
-- `forward=pending|failed`: few entries among many delivered ones, found by state.
CREATE INDEX idx_forward_outbox_state ON forward_outbox (state);

-- Pruning clears conflict payloads too, so the column becomes nullable; SQLite can only
-- do that by rebuilding the table. Nothing references webhook_conflicts.
CREATE TABLE webhook_conflicts_new (
    id               INTEGER PRIMARY KEY,
    webhook_event_id INTEGER NOT NULL REFERENCES webhook_events (id),
    fingerprint      TEXT    NOT NULL,
    payload          TEXT,               -- NULL once pruned
    received_at      TEXT    NOT NULL
);

INSERT INTO webhook_conflicts_new (id, webhook_event_id, fingerprint, payload, received_at)
SELECT id, webhook_event_id, fingerprint, payload, received_at FROM webhook_conflicts;

DROP TABLE webhook_conflicts;

ALTER TABLE webhook_conflicts_new RENAME TO webhook_conflicts;

CREATE INDEX idx_webhook_conflicts_event ON webhook_conflicts (webhook_event_id);
