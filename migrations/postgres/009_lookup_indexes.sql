-- Exact lookups the admin side offers, each served by its own index so that a value that
-- matches few rows (or none) answers in one index range instead of a walk through every
-- row (measured by `cargo bench --bench scale`: at 1,000,000 events an event type nobody
-- sends took 1.9 s and an old order id 570 ms on SQLite; see the README's scale table).
--
-- `event_type`: one more entry per new event, the price of a bounded answer for any type.
CREATE INDEX idx_webhook_events_type ON webhook_events (event_type, first_seen_at, id);
-- `order_id`: conversions only, a fraction of the events.
CREATE INDEX idx_conversions_order ON conversions (order_id, created_at, id);
