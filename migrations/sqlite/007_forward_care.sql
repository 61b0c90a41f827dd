-- Looking after the merchant's app (SPEC §6.1): every forward attempt kept (the last 20
-- per event), and each source's forwarding state, stored so that a pause survives a
-- restart and holds for every process on the store.

-- One row per attempt. `response` is the first 1 KiB of the answer's body, as text.
CREATE TABLE forward_attempts (
    id               INTEGER PRIMARY KEY,
    webhook_event_id INTEGER NOT NULL REFERENCES webhook_events (id),
    at               TEXT    NOT NULL,      -- RFC 3339 UTC, microseconds: the attempt's start
    status           INTEGER,               -- NULL when no answer came
    duration_ms      INTEGER NOT NULL,
    error            TEXT,
    response         TEXT
);
CREATE INDEX idx_forward_attempts_event ON forward_attempts (webhook_event_id, id);

-- A row appears with a source's first recorded attempt (or a pause by hand). No row, or
-- paused_at NULL: active.
CREATE TABLE forward_sources (
    source               TEXT    PRIMARY KEY,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    paused_at            TEXT,
    last_error           TEXT
);

-- Replay and the per-source counts walk one source's entries.
CREATE INDEX idx_forward_outbox_source_state ON forward_outbox (source, state);
