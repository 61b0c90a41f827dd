-- Test-only: read by tests/common/stored.rs, straight from the database.
SELECT (SELECT count(*) FROM webhook_events),
       (SELECT count(*) FROM conversions),
       (SELECT count(*) FROM webhook_conflicts)
