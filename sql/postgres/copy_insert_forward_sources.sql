-- hooklatch copy (SPEC §5.2): writes a batch of `forward_sources` (one text array per
-- column); answers the keys (places in source order, not stored) of the rows it wrote. A
-- source already there is left alone and compared by the caller. An INSERT can return
-- only its own columns, so the keys come back by joining the written names to the input.
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])
        AS u(c1, c2, c3, c4, c5)
), written AS (
    INSERT INTO forward_sources (source, consecutive_failures, paused_at, last_error)
    SELECT c2, c3::integer, c4::timestamptz, c5 FROM input
    ON CONFLICT DO NOTHING
    RETURNING source
)
SELECT input.c1::bigint FROM input JOIN written ON written.source = input.c2
