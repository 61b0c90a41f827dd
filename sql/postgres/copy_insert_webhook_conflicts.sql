-- hooklatch copy (SPEC §5.2): writes a batch of `webhook_conflicts`, every column in one statement (one text array per column), ids kept; answers the keys it wrote. A row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO webhook_conflicts (id, webhook_event_id, fingerprint, payload, received_at) OVERRIDING SYSTEM VALUE
SELECT u.c1::bigint, u.c2::bigint, u.c3, u.c4, u.c5::timestamptz
  FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(c1, c2, c3, c4, c5)
ON CONFLICT DO NOTHING
RETURNING id
