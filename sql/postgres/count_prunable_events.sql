-- Must select exactly what prune_events.sql clears, so --dry-run and prune agree.
SELECT count(*) FROM webhook_events
WHERE payload IS NOT NULL AND first_seen_at < $1::timestamptz AND last_seen_at < $1::timestamptz
  AND NOT EXISTS (SELECT 1 FROM forward_outbox f
                  WHERE f.webhook_event_id = webhook_events.id
                    AND f.state IN ('pending', 'failed'))
