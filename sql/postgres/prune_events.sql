-- One batch: short transactions, so deliveries keep flowing while a large prune runs.
-- Served by the partial index idx_webhook_events_prunable (first_seen_at) WHERE payload
-- IS NOT NULL: a row last seen before the cutoff was first seen before it too.
-- Rows, keys, fingerprints and counts stay, so a late retry is still a duplicate. A
-- payload still owed to the app (its forward pending or failed) is never cleared;
-- count_prunable_events.sql says the same.
UPDATE webhook_events SET payload = NULL
WHERE id IN (SELECT id FROM webhook_events
             WHERE payload IS NOT NULL AND first_seen_at < $1::timestamptz AND last_seen_at < $1::timestamptz
               AND NOT EXISTS (SELECT 1 FROM forward_outbox f
                               WHERE f.webhook_event_id = webhook_events.id
                                 AND f.state IN ('pending', 'failed'))
             ORDER BY first_seen_at
             LIMIT $2::bigint)
