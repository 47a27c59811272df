-- LOMS's CreateOrder transaction (services/loms/store, Store.Create), statement
-- for statement on the real schema, in the same two pipelined round trips:
-- the order's row and the stock locks, then (after the service plans the
-- reservation in Go) the items, the reservation, the status, two outbox
-- events and the commit. Three distinct skus, one unit each, reserved in
-- warehouse 1. The events are stored as already sent: LOMS's relay, running
-- beside pgbench, must not spend the machine publishing pgbench's rows.
-- pgbench cannot read a result inside a pipeline, so the order's id is
-- currval of its sequence, inside a sub-select: currval is volatile, and
-- compared directly it would make Postgres scan the whole orders table.
-- Run with -M prepared (pgx prepares and caches statements too) and
-- -D nskus=N; the stock rows come from bench/main.go.
\set third :nskus / 3
\set sku1 random(1, :third)
\set sku2 random(:third + 1, 2 * :third)
\set sku3 random(2 * :third + 1, 3 * :third)
\set user random(1, 1000000000)
\startpipeline
BEGIN ISOLATION LEVEL READ COMMITTED;
INSERT INTO orders (user_id, status, idempotency_key, created_at, pay_by, updated_at)
VALUES (:user, 'new', NULL, now(), now() + interval '10 minutes', now())
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;
SELECT sku, warehouse_id, total, reserved FROM stocks
WHERE sku = ANY(ARRAY[:sku1, :sku2, :sku3]::bigint[])
ORDER BY sku, warehouse_id
FOR UPDATE;
\endpipeline
\startpipeline
INSERT INTO order_items (order_id, sku, count)
SELECT currval('orders_id_seq'), unnest(ARRAY[:sku1, :sku2, :sku3]::bigint[]), unnest(ARRAY[1, 1, 1]::bigint[]);
UPDATE stocks s SET reserved = s.reserved + v.count
FROM (SELECT unnest(ARRAY[:sku1, :sku2, :sku3]::bigint[]) AS sku,
             unnest(ARRAY[1, 1, 1]::bigint[]) AS warehouse_id,
             unnest(ARRAY[1, 1, 1]::bigint[]) AS count) v
WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id;
INSERT INTO reservations (order_id, sku, warehouse_id, count)
SELECT currval('orders_id_seq'), unnest(ARRAY[:sku1, :sku2, :sku3]::bigint[]), unnest(ARRAY[1, 1, 1]::bigint[]),
    unnest(ARRAY[1, 1, 1]::bigint[]);
UPDATE orders SET status = 'awaiting_payment', updated_at = now() WHERE id = (SELECT currval('orders_id_seq'));
INSERT INTO outbox (event_id, order_id, payload, created_at, traceparent, tracestate, sent_at)
SELECT unnest(ARRAY[gen_random_uuid(), gen_random_uuid()]), unnest(ARRAY[currval('orders_id_seq'), currval('orders_id_seq')]),
    unnest(ARRAY[convert_to(repeat('e', 72), 'UTF8'), convert_to(repeat('e', 74), 'UTF8')]), now(), NULL, NULL, now();
COMMIT;
\endpipeline
