-- Every source with outbox entries or a forwarding state, with its counts.
-- The outbox's sources are found by skipping from one to the next along
-- idx_forward_outbox_source_state (one index seek per source): `SELECT DISTINCT source`
-- read every outbox entry, delivered ones included, which grow with the store (57 ms at
-- 1,000,000 events). Each count is one range of that same index, (source, state),
-- answered from the index alone; a `state IN (…) GROUP BY source` over the state index
-- fetched every pending and failed entry's row for its source, then grouped them (tens
-- of thousands of failed forwards after an app's week-long outage).
WITH RECURSIVE outbox_sources(source) AS (
    SELECT min(source) FROM forward_outbox
    UNION ALL
    SELECT (SELECT min(o.source) FROM forward_outbox o WHERE o.source > s.source)
    FROM outbox_sources s
    WHERE s.source IS NOT NULL
), names AS (
    SELECT source FROM outbox_sources WHERE source IS NOT NULL
    UNION
    SELECT source FROM forward_sources
)
SELECT n.source, coalesce(s.consecutive_failures, 0), s.paused_at, s.last_error,
       (SELECT count(*) FROM forward_outbox o WHERE o.source = n.source AND o.state = 'pending'),
       (SELECT count(*) FROM forward_outbox o WHERE o.source = n.source AND o.state = 'failed')
FROM names n
LEFT JOIN forward_sources s ON s.source = n.source
ORDER BY n.source
