-- One attempt of a leased entry, in one statement: the entry's new state, the attempt
-- kept in its history (the newest $12 per event), and the source's consecutive failure
-- count, which pauses the source at $11. Nothing happens unless $2 still holds the lease.
--
-- $1 entry, $2 owner, $3 delivered, $4 new state, $5 retry delay (s), $6 status,
-- $7 error, $8 attempt start, $9 duration (ms), $10 response, $11 pause after, $12 kept.
--
-- The sub-statements see one snapshot: the trim does not see the attempt inserted beside
-- it, so it keeps $12 - 1 of the older ones. The upsert reads the source's row as it
-- was (serialised on that row across instances), so a source pauses exactly once;
-- paused_at = now() tells the caller that this transaction paused it.
WITH done AS (
    UPDATE forward_outbox
    SET state = $4, attempts = attempts + 1,
        next_attempt_at = CASE WHEN $4 = 'pending'
                               THEN now() + make_interval(secs => $5)
                               ELSE next_attempt_at END,
        last_status = $6, last_error = $7,
        delivered_at = CASE WHEN $3 THEN now() ELSE delivered_at END,
        lease_owner = NULL, lease_until = NULL
    WHERE webhook_event_id = $1 AND lease_owner = $2 AND state = 'pending'
    RETURNING webhook_event_id, source
), kept AS (
    INSERT INTO forward_attempts (webhook_event_id, at, status, duration_ms, error, response)
    SELECT webhook_event_id, $8::text::timestamptz, $6, $9, $7, $10 FROM done
), trimmed AS (
    DELETE FROM forward_attempts
    WHERE webhook_event_id IN (SELECT webhook_event_id FROM done)
      AND id NOT IN (
          SELECT id FROM forward_attempts WHERE webhook_event_id = $1
          ORDER BY id DESC LIMIT $12 - 1
      )
)
INSERT INTO forward_sources AS s (source, consecutive_failures, last_error, paused_at)
SELECT source, CASE WHEN $3 THEN 0 ELSE 1 END, $7,
       CASE WHEN NOT $3 AND $11 <= 1 THEN now() END
FROM done
ON CONFLICT (source) DO UPDATE SET
    consecutive_failures = CASE WHEN $3 THEN 0 ELSE s.consecutive_failures + 1 END,
    last_error = coalesce(excluded.last_error, s.last_error),
    paused_at = CASE
        WHEN NOT $3 AND s.paused_at IS NULL AND s.consecutive_failures + 1 >= $11 THEN now()
        ELSE s.paused_at
    END
RETURNING s.source, s.consecutive_failures, s.last_error, s.paused_at = now(),
          to_char(s.paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
