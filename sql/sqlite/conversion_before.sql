-- The conversion as it is before a delivery moves it, for the totals (the writer holds
-- the write lock, so nothing changes it in between).
SELECT status, currency, sale_amount, commission_amount
FROM conversions
WHERE source = ?1 AND external_conversion_id = ?2
