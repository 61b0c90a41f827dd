-- pgbench ceiling for new events: the same function call the server makes, each with a
-- fresh id.
\set n random(1, 2000000000)
\set r random(1, 2000000000)
SELECT * FROM process_webhook_idempotently('pgbench', 'pgb-' || :client_id || '-' || :n || '-' || :r, 'sale', '{"event_type":"sale","order_id":"o","commission_amount":15.00,"sale_amount":75.00}', 'fp-bench', 'ORDER', 15.00, 75.00, NULL, 'YOyqC7', NULL, NULL, NULL, NULL, NULL);
