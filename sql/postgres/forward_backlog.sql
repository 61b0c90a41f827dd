SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed'),
       extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending'))::float8,
       (SELECT count(*) FROM forward_sources WHERE paused_at IS NOT NULL)
FROM forward_outbox
