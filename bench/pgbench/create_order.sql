-- LOMS's CreateOrder transaction for one order (services/loms/store,
-- createBatch with a batch of one: what every order cost before group
-- reservation, and what LOMS_BATCH_MAX=1 still does), statement for
-- statement on the real schema, in the same two pipelined round trips: the
-- order's row and the stock locks, then (after the service plans the
-- reservation in Go) the items, the reserved counts, the reservations, the
-- status, two outbox events and the commit. Three distinct skus, one unit
-- each, reserved in warehouse 1. Each statement is the text of its sqlc
-- query with the parameters filled in (services/loms/store's
-- TestPgbenchScriptsRunTheStoresStatements keeps it so). LOMS's relay,
-- running beside pgbench, must not spend the machine publishing pgbench's
-- events: the harness holds the relay's advisory lock while pgbench runs
-- and deletes pgbench's outbox rows afterwards. pgbench cannot read a
-- result inside a pipeline, so the order's id is currval of its sequence,
-- inside a sub-select: currval is volatile, and compared directly it would
-- make Postgres scan the whole orders table.
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
SELECT i.user_id, 'new', NULLIF(i.idempotency_key, ''), i.created_at, i.pay_by, i.created_at
FROM (SELECT unnest(ARRAY[:user]::bigint[]) AS user_id, unnest(ARRAY['']::text[]) AS idempotency_key,
             unnest(ARRAY[now()]::timestamptz[]) AS created_at, unnest(ARRAY[now() + interval '10 minutes']::timestamptz[]) AS pay_by) i
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, user_id, COALESCE(idempotency_key, '')::text AS idempotency_key, created_at, pay_by;
SELECT sku, warehouse_id, total, reserved FROM stocks
WHERE sku = ANY(ARRAY[:sku1, :sku2, :sku3]::bigint[])
ORDER BY sku, warehouse_id
FOR UPDATE;
\endpipeline
\startpipeline
INSERT INTO order_items (order_id, sku, count)
SELECT unnest(ARRAY[(SELECT currval('orders_id_seq')), (SELECT currval('orders_id_seq')), (SELECT currval('orders_id_seq'))]::bigint[]), unnest(ARRAY[:sku1, :sku2, :sku3]::bigint[]), unnest(ARRAY[1, 1, 1]::bigint[]);
UPDATE stocks s SET reserved = s.reserved + v.count
FROM (SELECT unnest(ARRAY[:sku1, :sku2, :sku3]::bigint[]) AS sku,
             unnest(ARRAY[1, 1, 1]::bigint[]) AS warehouse_id,
             unnest(ARRAY[1, 1, 1]::bigint[]) AS count) v
WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id;
INSERT INTO reservations (order_id, sku, warehouse_id, count)
SELECT unnest(ARRAY[(SELECT currval('orders_id_seq')), (SELECT currval('orders_id_seq')), (SELECT currval('orders_id_seq'))]::bigint[]), unnest(ARRAY[:sku1, :sku2, :sku3]::bigint[]), unnest(ARRAY[1, 1, 1]::bigint[]), unnest(ARRAY[1, 1, 1]::bigint[]);
UPDATE orders o SET status = v.status::order_status, updated_at = now()
FROM (SELECT unnest(ARRAY[(SELECT currval('orders_id_seq'))]::bigint[]) AS id, unnest(ARRAY['awaiting_payment']::text[]) AS status) v
WHERE o.id = v.id;
INSERT INTO outbox (event_id, order_id, payload, created_at, traceparent, tracestate)
SELECT e.event_id, e.order_id, e.payload, now()::timestamptz, NULLIF(e.traceparent, ''), NULLIF(e.tracestate, '')
FROM (SELECT unnest(ARRAY[gen_random_uuid(), gen_random_uuid()]::uuid[]) AS event_id, unnest(ARRAY[(SELECT currval('orders_id_seq')), (SELECT currval('orders_id_seq'))]::bigint[]) AS order_id,
             unnest(ARRAY[convert_to(repeat('e', 72), 'UTF8'), convert_to(repeat('e', 74), 'UTF8')]::bytea[]) AS payload, unnest(ARRAY['', '']::text[]) AS traceparent,
             unnest(ARRAY['', '']::text[]) AS tracestate) e;
COMMIT;
\endpipeline
