-- hooklatch copy (SPEC §5.2): writes a batch of `forward_outbox`, every column in one statement (one text array per column), ids kept; answers the keys it wrote. A row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
-- event_seen_at is not copied: it is the event's first_seen_at (migration 010), read
-- from the event, which is copied first.
INSERT INTO forward_outbox (webhook_event_id, source, state, attempts, next_attempt_at, lease_owner, lease_until, last_status, last_error, delivered_at, created_at, event_seen_at)
SELECT u.c1::bigint, u.c2, u.c3, u.c4::bigint, u.c5::timestamptz, u.c6, u.c7::timestamptz, u.c8::bigint, u.c9, u.c10::timestamptz, u.c11::timestamptz, e.first_seen_at
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[]) AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)
  LEFT JOIN webhook_events e ON e.id = u.c1::bigint
ON CONFLICT DO NOTHING
RETURNING webhook_event_id
