-- hooklatch copy: the target's id sequences move past the copied ids, so a new event gets
-- a larger id than any copied one. (SQLite needs nothing: a new rowid is max + 1.)
-- Only ever forwards: an instance receiving on the target meanwhile may hold an id it
-- took from the sequence and has not committed (max(id) cannot see it), and moving the
-- sequence back would hand that id out again. So a sequence already at or past max + 1
-- is left where it is (nextval costs one unused id).
SELECT (SELECT CASE WHEN m.next > nextval(pg_get_serial_sequence('conversions', 'id')) THEN setval(pg_get_serial_sequence('conversions', 'id'), m.next, false) END
          FROM (SELECT coalesce(max(id), 0) + 1 AS next FROM conversions) AS m),
       (SELECT CASE WHEN m.next > nextval(pg_get_serial_sequence('webhook_events', 'id')) THEN setval(pg_get_serial_sequence('webhook_events', 'id'), m.next, false) END
          FROM (SELECT coalesce(max(id), 0) + 1 AS next FROM webhook_events) AS m),
       (SELECT CASE WHEN m.next > nextval(pg_get_serial_sequence('webhook_conflicts', 'id')) THEN setval(pg_get_serial_sequence('webhook_conflicts', 'id'), m.next, false) END
          FROM (SELECT coalesce(max(id), 0) + 1 AS next FROM webhook_conflicts) AS m),
       (SELECT CASE WHEN m.next > nextval(pg_get_serial_sequence('forward_attempts', 'id')) THEN setval(pg_get_serial_sequence('forward_attempts', 'id'), m.next, false) END
          FROM (SELECT coalesce(max(id), 0) + 1 AS next FROM forward_attempts) AS m)
