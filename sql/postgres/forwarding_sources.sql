-- Every source with outbox entries or a forwarding state, with its counts.
WITH names AS (
    SELECT DISTINCT source FROM forward_outbox
    UNION
    SELECT source FROM forward_sources
), counts AS (
    SELECT source,
           count(*) FILTER (WHERE state = 'pending') AS pending,
           count(*) FILTER (WHERE state = 'failed') AS failed
    FROM forward_outbox
    WHERE state IN ('pending', 'failed')
    GROUP BY source
)
SELECT n.source, coalesce(s.consecutive_failures, 0)::int8,
       to_char(s.paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), s.last_error,
       coalesce(c.pending, 0), coalesce(c.failed, 0)
FROM names n
LEFT JOIN forward_sources s ON s.source = n.source
LEFT JOIN counts c ON c.source = n.source
ORDER BY n.source
