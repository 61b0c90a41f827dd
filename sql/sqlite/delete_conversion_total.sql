-- A group with no conversion left is not shown, so it is not kept either.
DELETE FROM conversion_totals WHERE rowid = ?1
