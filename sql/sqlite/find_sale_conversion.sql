SELECT id, status
FROM conversions
WHERE source = ?1 AND external_event_id = ?2
