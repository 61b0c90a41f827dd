SELECT (SELECT count(*) FROM webhook_events),
       (SELECT count(*) FROM conversions),
       (SELECT count(*) FROM webhook_conflicts)
