-- Amounts are exact decimal text, and SQLite's sum() would add them as binary floats,
-- so the backend adds them as decimals in Rust; SQL only groups the rows.
SELECT status, currency, sale_amount, commission_amount
FROM conversions
ORDER BY status, currency
