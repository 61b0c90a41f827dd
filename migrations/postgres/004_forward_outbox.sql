-- The transactional outbox: one entry per processed event of a source that forwards,
-- inserted in the same transaction as the event, so an acknowledged event can never be
-- lost on its way to the merchant's app, and a duplicate never enters it.
--
-- state: 'pending' (to send at next_attempt_at), 'delivered', or 'failed' (gave up after
-- forward_max_attempts). An instance claims a due entry by setting lease_owner and
-- lease_until; a lease that expires (the instance died) makes the entry claimable again.
CREATE TABLE forward_outbox (
    webhook_event_id bigint      PRIMARY KEY REFERENCES webhook_events (id),
    source           text        NOT NULL,
    state            text        NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    lease_owner      text,
    lease_until      timestamptz,
    last_status      integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL
);

-- The worker's claim: due pending entries, oldest due first.
CREATE INDEX idx_forward_outbox_due ON forward_outbox (next_attempt_at)
    WHERE state = 'pending';
