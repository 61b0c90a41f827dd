-- hooklatch copy (SPEC §5.2): writes one row of `webhook_events`, every column as read from the other store, ids kept; a row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO webhook_events (id, source, external_event_id, event_type, payload, fingerprint, conversion_id, delivery_count, conflict_count, first_seen_at, last_seen_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
ON CONFLICT DO NOTHING
