-- A flash sale: create_order.sql's transaction (LOMS's CreateOrder for a
-- batch of one order), statement for statement and in the same two pipelined
-- round trips, for ONE sku (-D hotsku=N), 1 unit, reserved in warehouse 1.
-- Every client locks the same stock rows, so the orders serialize on them:
-- this is the rate that one row lock allows, the yardstick of LOMS's
-- flash-sale row. The statements are create_order.sql's with one-element
-- arrays (services/loms/store's TestPgbenchScriptsRunTheStoresStatements
-- checks both scripts against the store's text), so that a change there is
-- the same edit here; see there why the order's id is currval and who
-- removes the events. The events' payloads are a one-item order's size (14
-- bytes less than three items').
-- Run with -M prepared and -D hotsku=N; the stock rows come from bench/, with
-- more stock than a run can reserve.
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
WHERE sku = ANY(ARRAY[:hotsku]::bigint[])
ORDER BY sku, warehouse_id
FOR UPDATE;
\endpipeline
\startpipeline
INSERT INTO order_items (order_id, sku, count)
SELECT unnest(ARRAY[(SELECT currval('orders_id_seq'))]::bigint[]), unnest(ARRAY[:hotsku]::bigint[]), unnest(ARRAY[1]::bigint[]);
UPDATE stocks s SET reserved = s.reserved + v.count
FROM (SELECT unnest(ARRAY[:hotsku]::bigint[]) AS sku,
             unnest(ARRAY[1]::bigint[]) AS warehouse_id,
             unnest(ARRAY[1]::bigint[]) AS count) v
WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id;
INSERT INTO reservations (order_id, sku, warehouse_id, count)
SELECT unnest(ARRAY[(SELECT currval('orders_id_seq'))]::bigint[]), unnest(ARRAY[:hotsku]::bigint[]), unnest(ARRAY[1]::bigint[]), unnest(ARRAY[1]::bigint[]);
UPDATE orders o SET status = v.status::order_status, updated_at = now()
FROM (SELECT unnest(ARRAY[(SELECT currval('orders_id_seq'))]::bigint[]) AS id, unnest(ARRAY['awaiting_payment']::text[]) AS status) v
WHERE o.id = v.id;
INSERT INTO outbox (event_id, order_id, payload, created_at, traceparent, tracestate)
SELECT e.event_id, e.order_id, e.payload, now()::timestamptz, NULLIF(e.traceparent, ''), NULLIF(e.tracestate, '')
FROM (SELECT unnest(ARRAY[gen_random_uuid(), gen_random_uuid()]::uuid[]) AS event_id, unnest(ARRAY[(SELECT currval('orders_id_seq')), (SELECT currval('orders_id_seq'))]::bigint[]) AS order_id,
             unnest(ARRAY[convert_to(repeat('e', 58), 'UTF8'), convert_to(repeat('e', 60), 'UTF8')]::bytea[]) AS payload, unnest(ARRAY['', '']::text[]) AS traceparent,
             unnest(ARRAY['', '']::text[]) AS tracestate) e;
COMMIT;
\endpipeline
