-- Resumes a source and starts its failure count again; returns a row only when it was
-- paused.
UPDATE forward_sources
SET paused_at = NULL, consecutive_failures = 0
WHERE source = ?1 AND paused_at IS NOT NULL
RETURNING source
