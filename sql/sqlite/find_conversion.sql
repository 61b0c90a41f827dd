SELECT id, status
FROM conversions
WHERE source = ?1 AND external_conversion_id = ?2
