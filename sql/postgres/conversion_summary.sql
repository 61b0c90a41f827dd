-- The recount verify-totals compares the kept totals with. Exact sums: numeric addition
-- keeps the largest scale, so 0.10 + 0.20 + 0.30 is 0.60.
SELECT status, currency, count(*), sum(sale_amount)::text, sum(commission_amount)::text
FROM conversions
GROUP BY status, currency
