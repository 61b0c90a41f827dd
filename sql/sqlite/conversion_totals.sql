-- The per-(status, currency) totals the writer keeps (migration 008).
SELECT status, currency, count, sale_amount, commission_amount
FROM conversion_totals
