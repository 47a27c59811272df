-- name: LockStocks :many
-- Locks every stock row of the skus in one global (sku, warehouse_id) order,
-- so that concurrent orders over overlapping skus cannot deadlock.
SELECT sku, warehouse_id, total, reserved FROM stocks
WHERE sku = ANY(@skus::bigint[])
ORDER BY sku, warehouse_id
FOR UPDATE;

-- name: LockReservedStocks :many
-- Locks the stock rows an order has reservations on, in the same global
-- order as LockStocks.
SELECT s.sku, s.warehouse_id FROM stocks s
JOIN reservations r ON r.sku = s.sku AND r.warehouse_id = s.warehouse_id
WHERE r.order_id = @order_id
ORDER BY s.sku, s.warehouse_id
FOR UPDATE OF s;

-- name: ReserveStocks :exec
UPDATE stocks s SET reserved = s.reserved + v.count
FROM (SELECT unnest(@skus::bigint[]) AS sku,
             unnest(@warehouse_ids::bigint[]) AS warehouse_id,
             unnest(@counts::bigint[]) AS count) v
WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id;

-- name: InsertReservations :exec
INSERT INTO reservations (order_id, sku, warehouse_id, count)
SELECT @order_id, unnest(@skus::bigint[]), unnest(@warehouse_ids::bigint[]), unnest(@counts::bigint[]);

-- name: ReleaseReservations :exec
-- Returns an order's reserved units to the available stock.
WITH r AS (
    DELETE FROM reservations WHERE order_id = @order_id RETURNING sku, warehouse_id, count
)
UPDATE stocks s SET reserved = s.reserved - r.count
FROM r WHERE s.sku = r.sku AND s.warehouse_id = r.warehouse_id;

-- name: WriteOffReservations :exec
-- Ships an order's reserved units: they leave both the reserved and the total
-- count.
WITH r AS (
    DELETE FROM reservations WHERE order_id = @order_id RETURNING sku, warehouse_id, count
)
UPDATE stocks s SET reserved = s.reserved - r.count, total = s.total - r.count
FROM r WHERE s.sku = r.sku AND s.warehouse_id = r.warehouse_id;

-- name: ListAvailableStocks :many
SELECT warehouse_id, (total - reserved)::bigint AS available FROM stocks
WHERE sku = @sku AND total > reserved
ORDER BY warehouse_id;

-- name: SeedStocks :execrows
-- Adds stock rows that do not exist yet; existing rows keep their counts.
INSERT INTO stocks (sku, warehouse_id, total)
SELECT unnest(@skus::bigint[]), unnest(@warehouse_ids::bigint[]), unnest(@totals::bigint[])
ON CONFLICT (sku, warehouse_id) DO NOTHING;
