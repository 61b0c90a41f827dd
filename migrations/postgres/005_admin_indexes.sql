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

-- Pruning clears conflict payloads too.
ALTER TABLE webhook_conflicts ALTER COLUMN payload DROP NOT NULL;
