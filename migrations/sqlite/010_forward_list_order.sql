-- `forward=pending|failed` (the API's list, the console's forward-failed list and its
-- Forwarding page) shows events newest first. It was found through
-- idx_forward_outbox_state (state) and then sorted by each event's time, so every failed
-- forward was read and sorted before the first 50 could be given (108 ms p50 with 1,500
-- failed forwards at 3,000,000 events; a merchant whose app was down a week has tens of
-- thousands). The outbox now keeps its event's first_seen_at, which never changes, and
-- one index in the list's order answers a page as one range that stops at the limit.
--
-- The new index leads with state like the one it replaces, so it serves every
-- `state = …` lookup the old one did, and the writer keeps one index entry per outbox
-- entry, not two.
--
-- Nullable because SQLite cannot add a NOT NULL column without a default; every insert
-- sets it (insert_outbox, replay, requeue, copy), and the trigger below fills it for an
-- insert that does not (a row written by hand), so no entry drops out of the list.
ALTER TABLE forward_outbox ADD COLUMN event_seen_at TEXT;

UPDATE forward_outbox
   SET event_seen_at = (SELECT e.first_seen_at FROM webhook_events e
                         WHERE e.id = forward_outbox.webhook_event_id);

CREATE TRIGGER forward_outbox_event_seen_at
AFTER INSERT ON forward_outbox
WHEN NEW.event_seen_at IS NULL
BEGIN
    UPDATE forward_outbox
       SET event_seen_at = (SELECT e.first_seen_at FROM webhook_events e
                             WHERE e.id = NEW.webhook_event_id)
     WHERE webhook_event_id = NEW.webhook_event_id;
END;

DROP INDEX idx_forward_outbox_state;
CREATE INDEX idx_forward_outbox_listed
    ON forward_outbox (state, event_seen_at, webhook_event_id);
