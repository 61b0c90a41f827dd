-- Counts one recorded attempt against its source (?2: it failed) and pauses the source
-- at ?4 consecutive failures. The SET expressions read the row as it was, so the source
-- pauses exactly once; paused_at = ?5 (this call's time) tells the caller it just did.
INSERT INTO forward_sources (source, consecutive_failures, last_error, paused_at)
VALUES (?1, CASE WHEN ?2 THEN 1 ELSE 0 END, ?3, CASE WHEN ?2 AND ?4 <= 1 THEN ?5 END)
ON CONFLICT (source) DO UPDATE SET
    consecutive_failures = CASE WHEN ?2 THEN consecutive_failures + 1 ELSE 0 END,
    last_error = coalesce(?3, last_error),
    paused_at = CASE
        WHEN ?2 AND paused_at IS NULL AND consecutive_failures + 1 >= ?4 THEN ?5
        ELSE paused_at
    END
RETURNING consecutive_failures, last_error, paused_at
