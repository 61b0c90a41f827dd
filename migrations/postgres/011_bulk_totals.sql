-- `hooklatch copy` rebuilds the totals from the rows once the rows are in
-- (recompute_totals.sql), so the delta row each copied event and conversion would add is
-- work thrown away: a PL/pgSQL call and an insert per row. The row triggers now skip the rows written by a transaction
-- that said so with set_config('hooklatch.bulk', 'on', true) (sql/postgres/copy_bulk.sql).
-- The setting is local to that transaction: every other connection, and this one after
-- the commit, is counted exactly as before, so instances receiving while a copy runs keep
-- their totals. No table lock is taken.
--
-- A WHEN condition rather than a test inside the functions: a row it excludes queues no
-- after-trigger event and calls no PL/pgSQL at all. current_setting(…, true) is NULL in a
-- session that never set it, and '' after a transaction that set it locally ended.
DROP TRIGGER webhook_events_totals_insert ON webhook_events;
CREATE TRIGGER webhook_events_totals_insert
    AFTER INSERT ON webhook_events
    FOR EACH ROW
    WHEN (current_setting('hooklatch.bulk', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION hooklatch_event_inserted();

DROP TRIGGER conversions_totals ON conversions;
CREATE TRIGGER conversions_totals
    AFTER INSERT OR UPDATE OR DELETE ON conversions
    FOR EACH ROW
    WHEN (current_setting('hooklatch.bulk', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION hooklatch_conversion_changed();
