-- The transaction-scoped advisory lock folds and repairs take, so one runs at a time.
SELECT pg_try_advisory_xact_lock($1)
