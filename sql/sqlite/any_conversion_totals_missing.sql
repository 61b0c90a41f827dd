-- True when conversions exist but no total does (right after migration 008): every
-- conversion is in some group, and a group is only removed when it has none left.
SELECT EXISTS (SELECT 1 FROM conversions) AND NOT EXISTS (SELECT 1 FROM conversion_totals)
