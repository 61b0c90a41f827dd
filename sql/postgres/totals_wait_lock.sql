-- The totals advisory lock, waited for: a repair waits for a fold under way.
SELECT pg_advisory_xact_lock($1)
