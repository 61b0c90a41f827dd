SELECT EXISTS (
    SELECT 1 FROM forward_outbox
    WHERE state = 'pending' AND next_attempt_at <= ?1
      AND (lease_until IS NULL OR lease_until <= ?1)
)
