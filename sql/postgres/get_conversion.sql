-- Test-only: read by tests/common/stored.rs, straight from the database.
-- The conversion the event is linked to, else the one it created.
SELECT id, source, external_event_id, external_conversion_id, order_id, commission_amount,
       sale_amount, currency, tracking_id, status, affiliate_id, affiliate_code,
       to_char(source_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
FROM conversions
WHERE id = coalesce(
    (SELECT e.conversion_id FROM webhook_events e WHERE e.source = $1 AND e.external_event_id = $2),
    (SELECT x.id FROM conversions x WHERE x.source = $1 AND x.external_event_id = $2))
