-- One range of the partial index idx_forward_outbox_backlog per figure: delivered
-- entries, however many, are never walked.
SELECT (SELECT count(*) FROM forward_outbox WHERE state = 'pending'),
       (SELECT count(*) FROM forward_outbox WHERE state = 'failed'),
       extract(epoch FROM now() - (SELECT min(created_at) FROM forward_outbox
                                   WHERE state = 'pending'))::float8,
       (SELECT count(*) FROM forward_sources WHERE paused_at IS NOT NULL)
