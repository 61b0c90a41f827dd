-- Pauses a source by hand; returns a row only when it was active.
INSERT INTO forward_sources AS s (source, paused_at) VALUES ($1, now())
ON CONFLICT (source) DO UPDATE SET paused_at = excluded.paused_at
    WHERE s.paused_at IS NULL
RETURNING s.consecutive_failures::int8, s.last_error,
          to_char(s.paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
