-- hooklatch copy: how many rows each table holds and its largest key, in one statement so
-- the bounds are one snapshot (a row within them only refers to rows within them). Tables
-- in copy order: conversions, webhook_events, webhook_conflicts, forward_outbox,
-- forward_attempts, forward_sources (keyed by its place in source order, so its largest
-- key is its count).
SELECT (SELECT count(*)::bigint FROM conversions),
       (SELECT coalesce(max(id), 0) FROM conversions),
       (SELECT count(*)::bigint FROM webhook_events),
       (SELECT coalesce(max(id), 0) FROM webhook_events),
       (SELECT count(*)::bigint FROM webhook_conflicts),
       (SELECT coalesce(max(id), 0) FROM webhook_conflicts),
       (SELECT count(*)::bigint FROM forward_outbox),
       (SELECT coalesce(max(webhook_event_id), 0) FROM forward_outbox),
       (SELECT count(*)::bigint FROM forward_attempts),
       (SELECT coalesce(max(id), 0) FROM forward_attempts),
       (SELECT count(*)::bigint FROM forward_sources),
       (SELECT count(*)::bigint FROM forward_sources)
