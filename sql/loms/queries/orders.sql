-- name: InsertOrder :one
-- Inserts a new order unless the user already has one with this idempotency
-- key; then no row is returned. A concurrent insert with the same key waits
-- for the first transaction and then returns no row.
INSERT INTO orders (user_id, status, idempotency_key, created_at, pay_by, updated_at)
VALUES (@user_id, @status, sqlc.narg('idempotency_key'), @created_at, @pay_by, @created_at)
ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id;

-- name: GetOrderByIdempotencyKey :one
SELECT id FROM orders WHERE user_id = @user_id AND idempotency_key = @idempotency_key::text;

-- name: GetOrder :one
SELECT id, user_id, status, created_at, pay_by FROM orders WHERE id = @id;

-- name: GetOrderForUpdate :one
SELECT id, user_id, status, created_at, pay_by FROM orders WHERE id = @id FOR UPDATE;

-- name: UpdateOrderStatus :exec
UPDATE orders SET status = @status, updated_at = @updated_at WHERE id = @id;

-- name: InsertOrderItems :exec
INSERT INTO order_items (order_id, sku, count)
SELECT @order_id, unnest(@skus::bigint[]), unnest(@counts::bigint[]);

-- name: ListOrderItems :many
SELECT sku, count FROM order_items WHERE order_id = @order_id ORDER BY sku;

-- name: LockExpiredOrders :many
-- Claims a batch of orders whose payment window has passed. SKIP LOCKED lets
-- any number of sweepers (and OrderPayed calls) run at once: an order locked
-- by someone else is left to them.
SELECT id FROM orders
WHERE status = 'awaiting_payment' AND pay_by < @now
ORDER BY pay_by
LIMIT @max_orders
FOR UPDATE SKIP LOCKED;
