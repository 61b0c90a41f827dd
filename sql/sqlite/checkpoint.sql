-- Copies what the WAL holds back into the database file, without waiting for any lock
-- (src/store/sqlite/checkpoint.rs); answers (busy, pages logged, pages copied).
PRAGMA wal_checkpoint(PASSIVE)
