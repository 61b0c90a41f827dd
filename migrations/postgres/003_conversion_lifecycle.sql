-- Real Refersion deliveries describe one conversion across several topics (new,
-- approved, denied), each its own event. The conversion is keyed by Refersion's own id,
-- and moves along a lifecycle that never goes backwards (see SPEC §2, Conversions).
--
-- external_event_id stays: it is the event that created the conversion. A seed-style
-- sale keeps external_conversion_id NULL (NULLs are distinct under a unique index, so
-- any number of them coexist), and stays one conversion per sale event.
ALTER TABLE conversions
    ALTER COLUMN order_id DROP NOT NULL,
    ADD COLUMN external_conversion_id text,
    ADD COLUMN status                 text,
    ADD COLUMN affiliate_id           text,
    ADD COLUMN affiliate_code         text,
    ADD COLUMN source_updated_at      timestamptz,
    ADD COLUMN updated_at             timestamptz;

UPDATE conversions SET updated_at = created_at;

ALTER TABLE conversions ALTER COLUMN updated_at SET NOT NULL;

CREATE UNIQUE INDEX idx_conversions_external ON conversions (source, external_conversion_id);
