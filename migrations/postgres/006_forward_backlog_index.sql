-- The backlog gauges (pending count, failed count, oldest pending entry) are read every
-- few seconds by each instance, while delivered entries are never removed: they must
-- walk only the pending and failed entries. forward_backlog.sql asks one `state = …`
-- range per figure, and this partial index, which holds no delivered entry, answers
-- each; the oldest pending entry is the pending range's first key.
CREATE INDEX idx_forward_outbox_backlog ON forward_outbox (state, created_at)
    WHERE state IN ('pending', 'failed');
