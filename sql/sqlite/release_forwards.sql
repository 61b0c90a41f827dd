UPDATE forward_outbox
SET lease_owner = NULL, lease_until = NULL
WHERE lease_owner IS NOT NULL AND (?1 IS NULL OR lease_owner = ?1)
