-- hooklatch copy (SPEC §5.2): writes one row of `forward_outbox`, every column as read from the other store, ids kept; a row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
-- event_seen_at is not copied: it is the event's first_seen_at (migration 010), read
-- from the event, which is copied first.
INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at, lease_owner, lease_until, last_status, last_error, delivered_at, created_at, event_seen_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, (SELECT first_seen_at FROM webhook_events WHERE id = ?1))
ON CONFLICT DO NOTHING
