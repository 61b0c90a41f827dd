-- Looking after the merchant's app (SPEC §6.1): every forward attempt kept (the last 20
-- per event), and each source's forwarding state, stored so that a pause survives a
-- restart and holds for every instance on the database.

-- One row per attempt. `response` is the first 1 KiB of the answer's body, as text.
CREATE TABLE forward_attempts (
    id               bigserial   PRIMARY KEY,
    webhook_event_id bigint      NOT NULL REFERENCES webhook_events (id),
    at               timestamptz NOT NULL,  -- the attempt's start
    status           integer,               -- NULL when no answer came
    duration_ms      bigint      NOT NULL,
    error            text,
    response         text
);
CREATE INDEX idx_forward_attempts_event ON forward_attempts (webhook_event_id, id);

-- A row appears with a source's first recorded attempt (or a pause by hand). No row, or
-- paused_at NULL: active.
CREATE TABLE forward_sources (
    source               text        PRIMARY KEY,
    consecutive_failures integer     NOT NULL DEFAULT 0,
    paused_at            timestamptz,
    last_error           text
);

-- Replay and the per-source counts walk one source's entries.
CREATE INDEX idx_forward_outbox_source_state ON forward_outbox (source, state);
