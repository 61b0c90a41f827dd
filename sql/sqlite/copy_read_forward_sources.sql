-- hooklatch copy (SPEC §5.2): reads a batch of `forward_sources`, every column, in key order
-- after ?1 up to ?3. The table is keyed by source name, so a row's key is its place in
-- byte order of the names (BINARY here, COLLATE "C" on PostgreSQL: the same order).
SELECT k, source, consecutive_failures, paused_at, last_error
  FROM (SELECT row_number() OVER (ORDER BY source) AS k,
               source, consecutive_failures, paused_at, last_error
          FROM forward_sources)
 WHERE k > ?1 AND k <= ?3
 ORDER BY k
 LIMIT ?2
