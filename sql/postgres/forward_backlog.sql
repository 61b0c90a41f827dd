SELECT count(*) FILTER (WHERE state = 'pending'),
       count(*) FILTER (WHERE state = 'failed'),
       extract(epoch FROM now() - min(created_at) FILTER (WHERE state = 'pending'))::float8
FROM forward_outbox
