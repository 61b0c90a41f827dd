-- One index range per figure (idx_forward_outbox_backlog): delivered entries, however
-- many, are never walked.
SELECT (SELECT count(*) FROM forward_outbox WHERE state = 'pending'),
       (SELECT count(*) FROM forward_outbox WHERE state = 'failed'),
       (julianday(?1) - julianday((SELECT min(created_at) FROM forward_outbox
                                   WHERE state = 'pending'))) * 86400.0,
       (SELECT count(*) FROM forward_sources WHERE paused_at IS NOT NULL)
