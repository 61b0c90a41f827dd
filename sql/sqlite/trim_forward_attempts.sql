-- Keeps the newest ?2 attempts of one event.
DELETE FROM forward_attempts
WHERE webhook_event_id = ?1
  AND id NOT IN (
      SELECT id FROM forward_attempts WHERE webhook_event_id = ?1
      ORDER BY id DESC LIMIT ?2
  )
