-- hooklatch copy (SPEC §5.2): writes one row of `forward_attempts`, every column as read from the other store, ids kept; a row whose key (or unique key) is taken is left alone and compared by the caller. Generated alike for
-- each table; the column order is the one src/store/transfer.rs names.
INSERT INTO forward_attempts (id, webhook_event_id, at, status, duration_ms, error, response)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT DO NOTHING
