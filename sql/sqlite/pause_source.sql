-- Pauses a source by hand; returns a row only when it was active.
INSERT INTO forward_sources (source, paused_at) VALUES (?1, ?2)
ON CONFLICT (source) DO UPDATE SET paused_at = excluded.paused_at
    WHERE forward_sources.paused_at IS NULL
RETURNING consecutive_failures, last_error, paused_at
