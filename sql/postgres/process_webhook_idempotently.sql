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
-- (same fingerprint: a read, nothing written here; the caller counts the delivery in
-- batches with count_duplicate_deliveries, so a retry storm rewrites no row per retry
-- and waits for no lock), 'conflict' (different
-- fingerprint: counted, and kept in webhook_conflicts while the event has fewer than 16
-- kept (SPEC §5.3, store::KEPT_CONFLICTS); the original is untouched).
--
-- Conversions (SPEC §2): p_commission_amount is set when the event carries one. With
-- p_external_conversion_id it is a Refersion conversion delivery: one upsert on
-- (source, external_conversion_id) creates the conversion or moves it unless the
-- delivery is stale. ON CONFLICT DO UPDATE locks the row and evaluates its WHERE against
-- the newest committed version, so concurrent deliveries of one conversion, from any
-- number of instances, apply one after the other and none is lost. Without it, it is a
-- seed-style sale: one conversion per event id; a row already holding that key (only
-- manual surgery leaves one without its event) is adopted, not a 503 for ever.
--
-- The signature changed when conversions gained a lifecycle; CREATE OR REPLACE cannot
-- change parameters or results, so the older shape is dropped first. The file runs as
-- one batch, so no caller sees the function missing.
--
-- Rows are updated by their key (source, external_event_id), never by the surrogate id,
-- and FOUND is not relied on after a SELECT INTO: both keep the function portable to
-- distributed PostgreSQL engines (see the README's "Scaling").
--
-- Local variables carry a v_ prefix and columns are qualified where the OUT parameters
-- share their names: PL/pgSQL rejects such references as ambiguous.
--
-- p_forward: the source forwards to the merchant's app, so a processed event also gets
-- its forward_outbox entry in this same transaction (never for a duplicate or conflict).
-- It came last, with a default, so the shape before it is dropped too.
--
-- p_first_seen_at, p_last_seen_at, p_delivery_count: `hooklatch import` replays an
-- exported event with its history (SPEC §5.2). A new event keeps those timestamps and
-- that count, and a conversion it creates gets created_at = p_first_seen_at. With
-- p_delivery_count set, a repeat of a known event is an imported line, not a delivery:
-- the caller does not count it. NULL (a delivery) means now() and 1.
DROP FUNCTION IF EXISTS process_webhook_idempotently(
    text, text, text, text, text, text, numeric, numeric, text, text);
DROP FUNCTION IF EXISTS process_webhook_idempotently(
    text, text, text, text, text, text, numeric, numeric, text, text,
    text, text, text, text, timestamptz);
DROP FUNCTION IF EXISTS process_webhook_idempotently(
    text, text, text, text, text, text, numeric, numeric, text, text,
    text, text, text, text, timestamptz, boolean);

CREATE OR REPLACE FUNCTION process_webhook_idempotently(
    p_source                 text,
    p_external_event_id      text,
    p_event_type             text,
    p_payload                text,
    p_fingerprint            text,
    p_order_id               text,
    p_commission_amount      numeric,
    p_sale_amount            numeric,
    p_currency               text,
    p_tracking_id            text,
    p_status                 text,
    p_external_conversion_id text,
    p_affiliate_id           text,
    p_affiliate_code         text,
    p_source_updated_at      timestamptz,
    p_forward                boolean DEFAULT false,
    p_first_seen_at          timestamptz DEFAULT NULL,
    p_last_seen_at           timestamptz DEFAULT NULL,
    p_delivery_count         bigint DEFAULT NULL,
    OUT outcome           text,
    OUT webhook_event_id  bigint,
    OUT conversion_id     bigint,
    OUT conversion_status text,
    OUT applied           boolean
)
LANGUAGE plpgsql
AS $$
DECLARE
    v_event_id      bigint;
    v_conversion_id bigint;
    v_status        text;
    v_fingerprint   text;
    v_conflicts     bigint;
    v_processed     boolean := false;
    v_first_seen    timestamptz := coalesce(p_first_seen_at, now());
    v_last_seen     timestamptz := coalesce(p_last_seen_at, p_first_seen_at, now());
    v_count         bigint := coalesce(p_delivery_count, 1);
BEGIN
    applied := false;
    -- Two passes at most: a miss, then an INSERT that lost a race to a transaction that
    -- has since committed. In READ COMMITTED each statement takes a fresh snapshot, so
    -- the second lookup sees the winner's row.
    FOR attempt IN 1..2 LOOP
        v_event_id := NULL;
        SELECT e.id, e.fingerprint, e.conversion_id, c.status
          INTO v_event_id, v_fingerprint, v_conversion_id, v_status
          FROM webhook_events e
          LEFT JOIN conversions c ON c.id = e.conversion_id
         WHERE e.source = p_source
           AND e.external_event_id = p_external_event_id;
        EXIT WHEN v_event_id IS NOT NULL;

        -- A seed-style sale claims its id through the conversion's own unique key
        -- (source, external_event_id), so the event row is inserted once, already
        -- pointing at its conversion: two inserts, no update. A concurrent first
        -- delivery of the same id makes this insert wait for it, exactly as the event
        -- insert would; then the lookup above finds the winner.
        IF p_commission_amount IS NOT NULL AND p_external_conversion_id IS NULL THEN
            v_conversion_id := NULL;
            INSERT INTO conversions AS c
                   (source, external_event_id, order_id, commission_amount,
                    sale_amount, currency, tracking_id, status, created_at, updated_at)
            VALUES (p_source, p_external_event_id, p_order_id, p_commission_amount,
                    p_sale_amount, p_currency, p_tracking_id, p_status, v_first_seen,
                    v_first_seen)
            ON CONFLICT (source, external_event_id) DO NOTHING
            RETURNING c.id, c.status INTO v_conversion_id, v_status;
            IF v_conversion_id IS NOT NULL THEN
                INSERT INTO webhook_events AS e
                       (source, external_event_id, event_type, payload, fingerprint,
                        conversion_id, first_seen_at, last_seen_at, delivery_count)
                VALUES (p_source, p_external_event_id, p_event_type, p_payload,
                        p_fingerprint, v_conversion_id, v_first_seen, v_last_seen, v_count)
                ON CONFLICT (source, external_event_id) DO NOTHING
                RETURNING e.id INTO v_event_id;
                IF v_event_id IS NULL THEN
                    -- A delivery of this id that carries no sale won the race for the
                    -- event key: take back this transaction's own conversion row, and
                    -- answer as a repeat of that event on the next pass.
                    DELETE FROM conversions c WHERE c.id = v_conversion_id;
                    CONTINUE;
                END IF;
                applied := true;
                v_processed := true;
                EXIT;
            END IF;
            -- The key is taken: by a committed event (next pass finds it), or by a stray
            -- conversions row without its event, adopted by the general path below.
            CONTINUE WHEN EXISTS (
                SELECT 1 FROM webhook_events e
                 WHERE e.source = p_source AND e.external_event_id = p_external_event_id);
        END IF;

        INSERT INTO webhook_events AS e
               (source, external_event_id, event_type, payload, fingerprint,
                first_seen_at, last_seen_at, delivery_count)
        VALUES (p_source, p_external_event_id, p_event_type, p_payload, p_fingerprint,
                v_first_seen, v_last_seen, v_count)
        ON CONFLICT (source, external_event_id) DO NOTHING
        RETURNING e.id INTO v_event_id;

        IF v_event_id IS NOT NULL THEN
            IF p_external_conversion_id IS NOT NULL THEN
                INSERT INTO conversions AS c
                       (source, external_event_id, external_conversion_id, order_id,
                        commission_amount, sale_amount, currency, status, affiliate_id,
                        affiliate_code, source_updated_at, created_at, updated_at)
                VALUES (p_source, p_external_event_id, p_external_conversion_id, p_order_id,
                        p_commission_amount, p_sale_amount, p_currency, p_status,
                        p_affiliate_id, p_affiliate_code, p_source_updated_at, v_first_seen,
                        v_first_seen)
                ON CONFLICT (source, external_conversion_id) DO UPDATE SET
                    order_id          = coalesce(excluded.order_id, c.order_id),
                    commission_amount = excluded.commission_amount,
                    sale_amount       = excluded.sale_amount,
                    currency          = coalesce(excluded.currency, c.currency),
                    status            = excluded.status,
                    affiliate_id      = coalesce(excluded.affiliate_id, c.affiliate_id),
                    affiliate_code    = coalesce(excluded.affiliate_code, c.affiliate_code),
                    source_updated_at = coalesce(excluded.source_updated_at, c.source_updated_at),
                    updated_at        = excluded.updated_at
                -- Not stale: strictly newer, or (equal or missing timestamps) not a move
                -- back to PENDING. Same rule as sql/sqlite/apply_conversion.sql.
                WHERE excluded.source_updated_at > c.source_updated_at
                   OR ((excluded.source_updated_at IS NULL OR c.source_updated_at IS NULL
                        OR excluded.source_updated_at = c.source_updated_at)
                       AND NOT (excluded.status = 'PENDING'
                                AND coalesce(c.status, 'PENDING') <> 'PENDING'))
                RETURNING c.id, c.status INTO v_conversion_id, v_status;
                applied := v_conversion_id IS NOT NULL;
                IF NOT applied THEN
                    -- Stale: the row exists (the upsert waited for and locked it).
                    SELECT c.id, c.status INTO v_conversion_id, v_status
                      FROM conversions c
                     WHERE c.source = p_source
                       AND c.external_conversion_id = p_external_conversion_id;
                END IF;
            ELSIF p_commission_amount IS NOT NULL THEN
                INSERT INTO conversions AS c
                       (source, external_event_id, order_id, commission_amount,
                        sale_amount, currency, tracking_id, status, created_at, updated_at)
                VALUES (p_source, p_external_event_id, p_order_id, p_commission_amount,
                        p_sale_amount, p_currency, p_tracking_id, p_status, v_first_seen,
                        v_first_seen)
                ON CONFLICT (source, external_event_id) DO NOTHING
                RETURNING c.id, c.status INTO v_conversion_id, v_status;
                applied := v_conversion_id IS NOT NULL;
                IF NOT applied THEN
                    SELECT c.id, c.status INTO v_conversion_id, v_status
                      FROM conversions c
                     WHERE c.source = p_source
                       AND c.external_event_id = p_external_event_id;
                END IF;
            END IF;

            IF v_conversion_id IS NOT NULL THEN
                UPDATE webhook_events e
                   SET conversion_id = v_conversion_id
                 WHERE e.source = p_source
                   AND e.external_event_id = p_external_event_id;
            END IF;
            v_processed := true;
            EXIT;
        END IF;
    END LOOP;

    IF v_processed THEN
        -- Every path that answers 'processed' leaves the loop through here, so each
        -- writes the outbox entry in the event's own transaction.
        IF p_forward THEN
            -- event_seen_at: the event's first_seen_at, which was v_first_seen on
            -- every path that inserted it (migration 010 orders the outbox by it).
            INSERT INTO forward_outbox (webhook_event_id, source, next_attempt_at, created_at,
                                        event_seen_at)
            VALUES (v_event_id, p_source, now(), now(), v_first_seen);
        END IF;
        outcome := 'processed';
        webhook_event_id := v_event_id;
        conversion_id := v_conversion_id;
        conversion_status := v_status;
        RETURN;
    END IF;

    IF v_event_id IS NULL THEN
        -- Event rows are never deleted, so this is unreachable short of manual surgery;
        -- serialization_failure makes the caller answer 503 and the provider retry.
        RAISE EXCEPTION 'webhook event (%, %) was claimed but cannot be read',
            p_source, p_external_event_id
            USING ERRCODE = 'serialization_failure';
    END IF;

    IF v_fingerprint = p_fingerprint THEN
        -- Nothing to write: the caller counts it (see the header).
        outcome := 'duplicate';
    ELSE
        -- The UPDATE locks the event row, so concurrent conflicts count one at a time and
        -- exactly the first 16 are kept.
        UPDATE webhook_events e
           SET delivery_count = e.delivery_count + 1,
               conflict_count = e.conflict_count + 1,
               last_seen_at   = now()
         WHERE e.source = p_source
           AND e.external_event_id = p_external_event_id
        RETURNING e.conflict_count INTO v_conflicts;
        IF v_conflicts <= 16 THEN
            INSERT INTO webhook_conflicts (webhook_event_id, fingerprint, payload, received_at)
            VALUES (v_event_id, p_fingerprint, p_payload, now());
        END IF;
        outcome := 'conflict';
    END IF;
    webhook_event_id := v_event_id;
    conversion_id := v_conversion_id;
    conversion_status := v_status;
END;
$$;

-- Duplicate deliveries counted in batches: one statement per batch per instance instead
-- of one row rewrite per retry. Ids are locked in ascending order, so two instances
-- flushing at once never deadlock. The events counted are already durable, so the
-- counts need not wait for a WAL flush: a crash may lose the last counts, never an event.
CREATE OR REPLACE FUNCTION count_duplicate_deliveries(
    p_ids   bigint[],
    p_counts bigint[],
    p_seen  timestamptz[]
)
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    SET LOCAL synchronous_commit = off;
    -- LockRows runs above the sort: the rows are locked in id order.
    PERFORM 1 FROM webhook_events e WHERE e.id = ANY (p_ids) ORDER BY e.id FOR UPDATE;
    UPDATE webhook_events e
       SET delivery_count = e.delivery_count + u.n,
           last_seen_at   = greatest(e.last_seen_at, u.seen)
      FROM unnest(p_ids, p_counts, p_seen) AS u(id, n, seen)
     WHERE e.id = u.id;
END;
$$;
