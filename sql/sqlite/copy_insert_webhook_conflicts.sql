-- hooklatch copy (SPEC §5.2): writes one row of `webhook_conflicts`, every column as read from the other store, ids kept; a row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO webhook_conflicts (id, webhook_event_id, fingerprint, payload, received_at)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT DO NOTHING
