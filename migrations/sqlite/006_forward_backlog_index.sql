-- The backlog gauges (pending count, failed count, oldest pending entry) are read every
-- few seconds by each instance, while delivered entries are never removed: they must
-- walk only the pending and failed entries. forward_backlog.sql asks one `state = ?`
-- range per figure, and this index answers each from its own range, the oldest pending
-- entry being the range's first key. (SQLite uses a partial index only when the query
-- repeats its WHERE clause word for word, so this one is whole; PostgreSQL's is partial.)
CREATE INDEX idx_forward_outbox_backlog ON forward_outbox (state, created_at);
