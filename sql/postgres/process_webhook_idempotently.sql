-- The whole receive step as one function, so hooklatch makes one round trip per webhook
-- (sql/postgres/process.sql calls it). Installed by `migrate()` after the numbered
-- migrations with CREATE OR REPLACE, every time: editing this file and restarting
-- updates the function (a repeatable migration, as Flyway calls it).
--
-- Exactly-once comes from idx_webhook_events_idempotency: the INSERT claims the id or,
-- if another transaction holds or committed it, waits for that one and inserts nothing.
-- No exception handling (a subtransaction per call would cost more than the lookup).
--
-- Outcomes: 'processed' (event and conversion committed together, durably), 'duplicate'
-- (same fingerprint: only delivery_count/last_seen_at move), 'conflict' (different
-- fingerprint: the delivery is kept in webhook_conflicts, the original is untouched).
--
-- Local variables carry a v_ prefix and columns are qualified where the OUT parameters
-- share their names: PL/pgSQL rejects such references as ambiguous.
--
-- p_forward: the source forwards to the merchant's app, so a processed event also gets
-- its forward_outbox entry in this same transaction (never for a duplicate or conflict).
--
-- A changed parameter list makes CREATE OR REPLACE add an overload beside the old one,
-- and calls would become ambiguous: drop each earlier signature first.
DROP FUNCTION IF EXISTS process_webhook_idempotently(
    text, text, text, text, text, text, numeric, numeric, text, text);

CREATE OR REPLACE FUNCTION process_webhook_idempotently(
    p_source            text,
    p_external_event_id text,
    p_event_type        text,
    p_payload           text,
    p_fingerprint       text,
    p_order_id          text,
    p_commission_amount numeric,
    p_sale_amount       numeric,
    p_currency          text,
    p_tracking_id       text,
    p_forward           boolean DEFAULT false,
    OUT outcome          text,
    OUT webhook_event_id bigint,
    OUT conversion_id    bigint
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_event_id      bigint;
    v_conversion_id bigint;
    v_fingerprint   text;
BEGIN
    -- Two passes at most: a miss, then an INSERT that lost a race to a transaction that
    -- has since committed. In READ COMMITTED each statement takes a fresh snapshot, so
    -- the second lookup sees the winner's row.
    FOR attempt IN 1..2 LOOP
        SELECT e.id, e.fingerprint, e.conversion_id
          INTO v_event_id, v_fingerprint, v_conversion_id
          FROM webhook_events e
         WHERE e.source = p_source
           AND e.external_event_id = p_external_event_id;
        EXIT WHEN FOUND;

        INSERT INTO webhook_events AS e
               (source, external_event_id, event_type, payload, fingerprint,
                first_seen_at, last_seen_at)
        VALUES (p_source, p_external_event_id, p_event_type, p_payload, p_fingerprint,
                now(), now())
        ON CONFLICT (source, external_event_id) DO NOTHING
        RETURNING e.id INTO v_event_id;

        IF FOUND THEN
            IF p_order_id IS NOT NULL THEN
                INSERT INTO conversions AS c
                       (source, external_event_id, order_id, commission_amount,
                        sale_amount, currency, tracking_id, created_at, updated_at)
                VALUES (p_source, p_external_event_id, p_order_id, p_commission_amount,
                        p_sale_amount, p_currency, p_tracking_id, now(), now())
                RETURNING c.id INTO v_conversion_id;

                UPDATE webhook_events e
                   SET conversion_id = v_conversion_id
                 WHERE e.id = v_event_id;
            END IF;
            IF p_forward THEN
                INSERT INTO forward_outbox (webhook_event_id, source, next_attempt_at, created_at)
                VALUES (v_event_id, p_source, now(), now());
            END IF;
            outcome := 'processed';
            webhook_event_id := v_event_id;
            conversion_id := v_conversion_id;
            RETURN;
        END IF;
    END LOOP;

    IF v_event_id IS NULL THEN
        -- Event rows are never deleted, so this is unreachable short of manual surgery;
        -- serialization_failure makes the caller answer 503 and the provider retry.
        RAISE EXCEPTION 'webhook event (%, %) was claimed but cannot be read',
            p_source, p_external_event_id
            USING ERRCODE = 'serialization_failure';
    END IF;

    IF v_fingerprint = p_fingerprint THEN
        -- The event itself is already durable; counting a retry need not wait for a WAL
        -- flush (a crash may lose the count, never the event). Local to this transaction.
        PERFORM set_config('synchronous_commit', 'off', true);
        UPDATE webhook_events e
           SET delivery_count = e.delivery_count + 1,
               last_seen_at   = now()
         WHERE e.id = v_event_id;
        outcome := 'duplicate';
    ELSE
        INSERT INTO webhook_conflicts (webhook_event_id, fingerprint, payload, received_at)
        VALUES (v_event_id, p_fingerprint, p_payload, now());
        UPDATE webhook_events e
           SET delivery_count = e.delivery_count + 1,
               conflict_count = e.conflict_count + 1,
               last_seen_at   = now()
         WHERE e.id = v_event_id;
        outcome := 'conflict';
    END IF;
    webhook_event_id := v_event_id;
    conversion_id := v_conversion_id;
END;
$$;
