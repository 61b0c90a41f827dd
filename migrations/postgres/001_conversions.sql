-- Conversions: one per (source, external_event_id), created in the same transaction as
-- the event that carries the sale. Amounts are exact numeric, never float; numeric keeps
-- the scale it was given, so 15.00 reads back as 15.00.
CREATE TABLE conversions (
    id                bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source            text        NOT NULL,
    external_event_id text        NOT NULL,
    order_id          text        NOT NULL,
    commission_amount numeric     NOT NULL,
    sale_amount       numeric     NOT NULL,
    currency          text,
    tracking_id       text,
    created_at        timestamptz NOT NULL
);

CREATE UNIQUE INDEX idx_conversions_idempotency ON conversions (source, external_event_id);
