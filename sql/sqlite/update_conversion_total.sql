UPDATE conversion_totals SET count = ?2, sale_amount = ?3, commission_amount = ?4
WHERE rowid = ?1
