-- Moves the conversion deltas into the totals, rewriting the few total rows (they have no
-- key to upsert on: status and currency may be NULL). Rewrites nothing without deltas.
WITH moved AS (DELETE FROM conversion_total_deltas RETURNING *),
     kept AS (DELETE FROM conversion_totals
               WHERE EXISTS (SELECT 1 FROM conversion_total_deltas)
              RETURNING *)
INSERT INTO conversion_totals (status, currency, count, sale_amount, commission_amount)
SELECT status, currency, sum(count), sum(sale_amount), sum(commission_amount)
  FROM (SELECT * FROM moved UNION ALL SELECT * FROM kept) t
 GROUP BY status, currency
HAVING sum(count) <> 0
