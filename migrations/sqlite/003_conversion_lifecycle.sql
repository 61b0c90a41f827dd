-- Real Refersion deliveries describe one conversion across several topics (new,
-- approved, denied), each its own event. The conversion is keyed by Refersion's own id,
-- and moves along a lifecycle that never goes backwards (see SPEC §2, Conversions).
--
-- external_event_id stays: it is the event that created the conversion. A seed-style
-- sale keeps external_conversion_id NULL (NULLs are distinct under a unique index, so
-- any number of them coexist), and stays one conversion per sale event.
--
-- order_id becomes optional, which SQLite can only do by rebuilding the table. Foreign
-- keys are on and webhook_events references conversions, so their check is deferred to
-- the commit, by which time the rebuilt table carries every id again.
PRAGMA defer_foreign_keys = ON;

CREATE TABLE conversions_new (
    id                     INTEGER PRIMARY KEY,
    source                 TEXT    NOT NULL,
    external_event_id      TEXT    NOT NULL,
    order_id               TEXT,
    commission_amount      TEXT    NOT NULL,
    sale_amount            TEXT    NOT NULL,
    currency               TEXT,
    tracking_id            TEXT,
    created_at             TEXT    NOT NULL,  -- RFC 3339 UTC, microseconds, written by the app
    external_conversion_id TEXT,
    status                 TEXT,
    affiliate_id           TEXT,
    affiliate_code         TEXT,
    source_updated_at      TEXT,              -- the provider's updated (else created), as RFC 3339 UTC
    updated_at             TEXT    NOT NULL
);

INSERT INTO conversions_new
       (id, source, external_event_id, order_id, commission_amount, sale_amount, currency,
        tracking_id, created_at, updated_at)
SELECT id, source, external_event_id, order_id, commission_amount, sale_amount, currency,
       tracking_id, created_at, created_at
  FROM conversions;

DROP TABLE conversions;

ALTER TABLE conversions_new RENAME TO conversions;

CREATE UNIQUE INDEX idx_conversions_idempotency ON conversions (source, external_event_id);
CREATE UNIQUE INDEX idx_conversions_external ON conversions (source, external_conversion_id);
