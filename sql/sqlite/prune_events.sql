-- One batch: short transactions, so deliveries keep flowing while a large prune runs.
-- Served by the partial index idx_webhook_events_prunable (first_seen_at) WHERE payload
-- IS NOT NULL: a row last seen before the cutoff was first seen before it too. Named,
-- because while every payload is still there the planner rates it no better than
-- idx_webhook_events_seen, which would walk the already pruned rows again each batch.
-- Rows, keys, fingerprints and counts stay, so a late retry is still a duplicate. A
-- payload still owed to the app (its forward pending or failed) is never cleared;
-- count_prunable_events.sql says the same.
UPDATE webhook_events SET payload = NULL
WHERE id IN (SELECT id FROM webhook_events INDEXED BY idx_webhook_events_prunable
             WHERE payload IS NOT NULL AND first_seen_at < ?1 AND last_seen_at < ?1
               AND NOT EXISTS (SELECT 1 FROM forward_outbox f
                               WHERE f.webhook_event_id = webhook_events.id
                                 AND f.state IN ('pending', 'failed'))
             ORDER BY first_seen_at
             LIMIT ?2)
