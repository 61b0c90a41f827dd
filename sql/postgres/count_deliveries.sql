-- $3 is bound as RFC 3339 text (…Z), so the cast does not depend on the session's zone.
SELECT count_duplicate_deliveries($1, $2, $3::text[]::timestamptz[])
