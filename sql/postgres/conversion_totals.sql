-- The kept per-(status, currency) totals (migration 008): the folded rows plus the deltas
-- not folded yet. A group whose conversions all moved away is not shown.
SELECT status, currency, sum(count)::bigint, sum(sale_amount)::text,
       sum(commission_amount)::text
FROM (SELECT status, currency, count, sale_amount, commission_amount FROM conversion_totals
      UNION ALL
      SELECT status, currency, count, sale_amount, commission_amount
        FROM conversion_total_deltas) t
GROUP BY status, currency
HAVING sum(count) <> 0
