-- name: InsertOrders :many
-- Inserts a batch of new orders, one per element of the arrays, except
-- those whose user already has an order with the same idempotency key (an
-- empty key is none): no row is returned for them. An insert that meets a
-- key another transaction has just inserted waits for that transaction and
-- then returns no row. The caller sorts the batch by (user, key), so that
-- two batches wait for each other's keys in one order and cannot deadlock
-- (set-returning functions in a select list yield their arrays in order).
INSERT INTO orders (user_id, status, idempotency_key, created_at, pay_by, updated_at)
SELECT i.user_id, 'new', NULLIF(i.idempotency_key, ''), i.created_at, i.pay_by, i.created_at
FROM (SELECT unnest(@user_ids::bigint[]) AS user_id, unnest(@idempotency_keys::text[]) AS idempotency_key,
             unnest(@created_ats::timestamptz[]) AS created_at, unnest(@pay_bys::timestamptz[]) AS pay_by) i
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, user_id, COALESCE(idempotency_key, '')::text AS idempotency_key, created_at, pay_by;

-- name: GetOrderByIdempotencyKey :one
SELECT id FROM orders WHERE user_id = @user_id AND idempotency_key = @idempotency_key::text;

-- name: GetOrder :one
SELECT id, user_id, status, created_at, pay_by FROM orders WHERE id = @id;

-- name: LockOrders :many
-- Locks orders in id order, as every transaction that locks several orders
-- does, so that two cannot deadlock; stock rows are locked after orders.
SELECT id, user_id, status, created_at, pay_by FROM orders
WHERE id = ANY(@ids::bigint[])
ORDER BY id
FOR UPDATE;

-- name: UpdateOrderStatuses :exec
-- Sets each order's status (the names of order_status, as text).
UPDATE orders o SET status = v.status::order_status, updated_at = @updated_at
FROM (SELECT unnest(@ids::bigint[]) AS id, unnest(@statuses::text[]) AS status) v
WHERE o.id = v.id;

-- name: InsertOrderItems :exec
INSERT INTO order_items (order_id, sku, count)
SELECT unnest(@order_ids::bigint[]), unnest(@skus::bigint[]), unnest(@counts::bigint[]);

-- name: ListOrderItems :many
-- The items of the given orders, by order and sku.
SELECT order_id, sku, count FROM order_items WHERE order_id = ANY(@order_ids::bigint[]) ORDER BY order_id, sku;

-- name: LockExpiredOrders :many
-- Claims a batch of orders whose payment window has passed. SKIP LOCKED lets
-- any number of sweepers (and OrderPayed calls) run at once: an order locked
-- by someone else is left to them.
SELECT id, user_id, status, created_at, pay_by FROM orders
WHERE status = 'awaiting_payment' AND pay_by < @now
ORDER BY pay_by
LIMIT @max_orders
FOR UPDATE SKIP LOCKED;

-- name: ListUserOrders :many
-- One page of a user's orders, newest first: those with ids below
-- @before_id (keyset paging; the first page passes the largest bigint),
-- read from the index orders_user_id_id in one short range scan.
--
-- The user is matched by a range of one value, not by "=", on purpose: the
-- planner drops a column fixed by "=" from the ORDER BY, and may then walk
-- the primary key backwards, filtering by user, whenever the user's orders
-- look common and evenly spread. For a user whose orders are all old, that
-- walk passes every newer order in the shop (8 ms for the first page past
-- 110,000 newer orders in BenchmarkListOrders, and growing with the shop,
-- against 0.2 ms from the index). With user_id kept in the ORDER BY, only
-- orders_user_id_id yields rows in that order, so the plan cannot drift.
SELECT id, user_id, status, created_at, pay_by FROM orders
WHERE user_id BETWEEN @user_id AND @user_id AND id < @before_id
ORDER BY user_id, id DESC
LIMIT @max_orders;

-- name: ListUserOrderItems :many
-- The items of the orders ListUserOrders returns for the same arguments, by
-- order and sku: the page's ids are found again by the same index scan, so
-- that both queries go to the server in one round trip. The caller runs the
-- two in one REPEATABLE READ transaction, so both see the same orders.
SELECT order_id, sku, count FROM order_items
WHERE order_id = ANY(ARRAY(
    SELECT id FROM orders
    WHERE user_id BETWEEN @user_id AND @user_id AND id < @before_id
    ORDER BY user_id, id DESC
    LIMIT @max_orders))
ORDER BY order_id, sku;

-- name: GetOrderStates :many
-- The status of each given order that exists, for watchers.
SELECT id, status, updated_at, pay_by FROM orders WHERE id = ANY(@ids::bigint[]);
