SELECT rowid, count, sale_amount, commission_amount
FROM conversion_totals
WHERE status IS ?1 AND currency IS ?2
