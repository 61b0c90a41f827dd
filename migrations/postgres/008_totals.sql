-- Totals kept as events arrive (SPEC §8), so `stats`, `conversions/summary`, the overview
-- and the Conversions page read a handful of rows instead of every event.
--
-- No hot row: a single totals row updated by every event would serialise every instance
-- on its lock. Instead each change inserts a delta row in its own transaction (triggers
-- below, so every writer is covered: the receive function, the duplicate counter,
-- import, copy, manual SQL), and each instance's flusher folds the deltas into the
-- totals every second (fold_totals.sql). Reads add the totals and the unfolded deltas.
-- The delta tables have no index: rows are only appended, and folded all at once.
CREATE TABLE source_totals (
    source       text        PRIMARY KEY,
    events       bigint      NOT NULL,
    deliveries   bigint      NOT NULL,
    conflicts    bigint      NOT NULL,
    last_seen_at timestamptz NOT NULL
);

CREATE TABLE source_total_deltas (
    source       text        NOT NULL,
    events       bigint      NOT NULL,
    deliveries   bigint      NOT NULL,
    conflicts    bigint      NOT NULL,
    last_seen_at timestamptz NOT NULL
);

-- One row per (status, currency), NULLs included; rewritten whole by each fold (a few
-- dozen rows), so it needs no unique key (PostgreSQL 12 has no NULLS NOT DISTINCT).
CREATE TABLE conversion_totals (
    status            text,
    currency          text,
    count             bigint  NOT NULL,
    sale_amount       numeric NOT NULL,
    commission_amount numeric NOT NULL
);

CREATE TABLE conversion_total_deltas (
    status            text,
    currency          text,
    count             bigint  NOT NULL,
    sale_amount       numeric NOT NULL,
    commission_amount numeric NOT NULL
);

INSERT INTO source_totals (source, events, deliveries, conflicts, last_seen_at)
SELECT source, count(*), sum(delivery_count), sum(conflict_count), max(last_seen_at)
  FROM webhook_events
 GROUP BY source;

INSERT INTO conversion_totals (status, currency, count, sale_amount, commission_amount)
SELECT status, currency, count(*), sum(sale_amount), sum(commission_amount)
  FROM conversions
 GROUP BY status, currency;

-- A new event: one delta row (row-level: the receive function inserts one event per
-- statement, and a row trigger is the cheapest way to say so).
CREATE FUNCTION hooklatch_event_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO source_total_deltas (source, events, deliveries, conflicts, last_seen_at)
    VALUES (NEW.source, 1, NEW.delivery_count, NEW.conflict_count, NEW.last_seen_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER webhook_events_totals_insert
    AFTER INSERT ON webhook_events
    FOR EACH ROW EXECUTE FUNCTION hooklatch_event_inserted();

-- Counted deliveries and conflicts: one delta row per source per statement, so a batch
-- of duplicate counts adds a row per source, not per event; a prune (payloads only)
-- adds none.
CREATE FUNCTION hooklatch_events_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO source_total_deltas (source, events, deliveries, conflicts, last_seen_at)
    SELECT n.source, 0, sum(n.delivery_count - o.delivery_count),
           sum(n.conflict_count - o.conflict_count), max(n.last_seen_at)
      FROM hooklatch_new_events n
      JOIN hooklatch_old_events o ON o.id = n.id
     GROUP BY n.source
    HAVING sum(n.delivery_count - o.delivery_count) <> 0
        OR sum(n.conflict_count - o.conflict_count) <> 0;
    RETURN NULL;
END;
$$;

CREATE TRIGGER webhook_events_totals_update
    AFTER UPDATE ON webhook_events
    REFERENCING OLD TABLE AS hooklatch_old_events NEW TABLE AS hooklatch_new_events
    FOR EACH STATEMENT EXECUTE FUNCTION hooklatch_events_updated();

-- A conversion created, moved or removed: its old group loses it, its new group gains
-- it. A row trigger sees the row exactly as the locked update changed it, so concurrent
-- deliveries of one conversion cannot both subtract the same old state.
CREATE FUNCTION hooklatch_conversion_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.status IS NOT DISTINCT FROM NEW.status
       AND OLD.currency IS NOT DISTINCT FROM NEW.currency
       AND OLD.sale_amount = NEW.sale_amount
       AND OLD.commission_amount = NEW.commission_amount
       AND scale(OLD.sale_amount) = scale(NEW.sale_amount)
       AND scale(OLD.commission_amount) = scale(NEW.commission_amount) THEN
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO conversion_total_deltas (status, currency, count, sale_amount, commission_amount)
        VALUES (OLD.status, OLD.currency, -1, -OLD.sale_amount, -OLD.commission_amount);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO conversion_total_deltas (status, currency, count, sale_amount, commission_amount)
        VALUES (NEW.status, NEW.currency, 1, NEW.sale_amount, NEW.commission_amount);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER conversions_totals
    AFTER INSERT OR UPDATE OR DELETE ON conversions
    FOR EACH ROW EXECUTE FUNCTION hooklatch_conversion_changed();

-- Filters that match few rows, each served by its own partial index, walked newest
-- first like idx_webhook_events_seen.
CREATE INDEX idx_webhook_events_duplicated ON webhook_events (first_seen_at, id)
    WHERE delivery_count > 1;
CREATE INDEX idx_webhook_events_conflicted ON webhook_events (first_seen_at, id)
    WHERE conflict_count > 0;
CREATE INDEX idx_conversions_status ON conversions (status, created_at, id);

-- The prunable index was keyed on last_seen_at, which every duplicate count moves. Keyed
-- on first_seen_at, which never changes, it is only touched when a payload is cleared:
-- a row last seen before the cutoff was first seen before it too.
DROP INDEX idx_webhook_events_prunable;
CREATE INDEX idx_webhook_events_prunable ON webhook_events (first_seen_at)
    WHERE payload IS NOT NULL;
