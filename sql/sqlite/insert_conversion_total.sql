INSERT INTO conversion_totals (status, currency, count, sale_amount, commission_amount)
VALUES (?1, ?2, ?3, ?4, ?5)
