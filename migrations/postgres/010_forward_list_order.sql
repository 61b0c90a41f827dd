-- `forward=pending|failed` (the API's list, the console's forward-failed list and its
-- Forwarding page) shows events newest first. It was found through
-- idx_forward_outbox_state (state) and then sorted by each event's time, so every failed
-- forward was read and sorted before the first 50 could be given (108 ms p50 with 1,500
-- failed forwards at 3,000,000 events on SQLite; a merchant whose app was down a week
-- has tens of thousands). The outbox now keeps its event's first_seen_at, which never
-- changes, and one index in the list's order answers a page as one range that stops at
-- the limit.
--
-- The new index leads with state like the one it replaces, so it serves every
-- `state = …` lookup the old one did, and the writer keeps one index entry per outbox
-- entry, not two.
--
-- The receive function and copy set the column; the trigger fills it for any other
-- insert (replay, requeue, a row written by hand), so no entry drops out of the list.
-- It fires only when the column was left NULL.
ALTER TABLE forward_outbox ADD COLUMN event_seen_at timestamptz;

UPDATE forward_outbox f
   SET event_seen_at = e.first_seen_at
  FROM webhook_events e
 WHERE e.id = f.webhook_event_id;

ALTER TABLE forward_outbox ALTER COLUMN event_seen_at SET NOT NULL;

CREATE FUNCTION hooklatch_outbox_event_seen_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT e.first_seen_at INTO NEW.event_seen_at
      FROM webhook_events e
     WHERE e.id = NEW.webhook_event_id;
    RETURN NEW;
END;
$$;

CREATE TRIGGER forward_outbox_event_seen_at
BEFORE INSERT ON forward_outbox
FOR EACH ROW WHEN (NEW.event_seen_at IS NULL)
EXECUTE FUNCTION hooklatch_outbox_event_seen_at();

DROP INDEX idx_forward_outbox_state;
CREATE INDEX idx_forward_outbox_listed
    ON forward_outbox (state, event_seen_at, webhook_event_id);
