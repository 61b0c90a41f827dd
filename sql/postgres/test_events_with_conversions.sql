-- Tests only: per event id of a source, how many event rows, the row id, and how many
-- conversions it created (tests/failover.rs reads a promoted standby with it).
SELECT e.external_event_id, count(DISTINCT e.id), min(e.id), count(c.id)
FROM webhook_events e
LEFT JOIN conversions c ON c.source = e.source AND c.external_event_id = e.external_event_id
WHERE e.source = $1
GROUP BY e.external_event_id
