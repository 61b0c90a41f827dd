-- hooklatch copy (SPEC §5.2): reads a batch of `forward_sources`, every column as text
-- (timestamps as stored text), in key order after $1 up to $3. The table is keyed by
-- source name, so a row's key is its place in byte order of the names (COLLATE "C", as
-- SQLite's BINARY: the same order on both stores).
SELECT k::text,
       source,
       consecutive_failures::text,
       to_char(paused_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
       last_error
  FROM (SELECT row_number() OVER (ORDER BY source COLLATE "C") AS k,
               source, consecutive_failures, paused_at, last_error
          FROM forward_sources) AS s
 WHERE k > $1 AND k <= $3
 ORDER BY k
 LIMIT $2
