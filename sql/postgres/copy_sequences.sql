-- hooklatch copy: the target's id sequences move past the copied ids, so a new event gets
-- a larger id than any copied one. (SQLite needs nothing: a new rowid is max + 1.)
SELECT setval(pg_get_serial_sequence('conversions', 'id'), coalesce((SELECT max(id) FROM conversions), 0) + 1, false),
       setval(pg_get_serial_sequence('webhook_events', 'id'), coalesce((SELECT max(id) FROM webhook_events), 0) + 1, false),
       setval(pg_get_serial_sequence('webhook_conflicts', 'id'), coalesce((SELECT max(id) FROM webhook_conflicts), 0) + 1, false),
       setval(pg_get_serial_sequence('forward_attempts', 'id'), coalesce((SELECT max(id) FROM forward_attempts), 0) + 1, false)
