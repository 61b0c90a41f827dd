-- pgbench ceiling for duplicates: the same function call, always for one existing event.
-- Source "pgbench" keeps its rows apart from the server phases (another fingerprint).
SELECT * FROM process_webhook_idempotently('pgbench', 'dup-fixed', 'sale', '{"event_type":"sale","order_id":"o","commission_amount":15.00,"sale_amount":75.00}', 'fp-bench', 'ORDER', 15.00, 75.00, NULL, 'YOyqC7', NULL, NULL, NULL, NULL, NULL);
