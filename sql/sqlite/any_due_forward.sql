SELECT EXISTS (
    SELECT 1 FROM forward_outbox
    WHERE state = 'pending' AND next_attempt_at <= ?1
      AND (lease_until IS NULL OR lease_until <= ?1)
      AND source NOT IN (SELECT source FROM forward_sources WHERE paused_at IS NOT NULL)
      AND source NOT IN (SELECT value FROM json_each(?2))
)
