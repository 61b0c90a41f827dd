SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed'),
       (julianday(?1) - julianday(min(created_at) FILTER (WHERE state = 'pending'))) * 86400.0,
       (SELECT count(*) FROM forward_sources WHERE paused_at IS NOT NULL)
FROM forward_outbox
