-- hooklatch copy (SPEC §5.2): writes one row of `forward_sources` as read from the other
-- store (?1 is its place in source order, not stored); a source already there is left
-- alone and compared by the caller.
INSERT INTO forward_sources (source, consecutive_failures, paused_at, last_error)
VALUES (?2, ?3, ?4, ?5)
ON CONFLICT DO NOTHING
