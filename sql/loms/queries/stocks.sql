-- name: LockStocks :many
-- Locks every stock row of the skus in one global (sku, warehouse_id) order,
-- so that concurrent orders over overlapping skus cannot deadlock.
SELECT sku, warehouse_id, total, reserved FROM stocks
WHERE sku = ANY(@skus::bigint[])
ORDER BY sku, warehouse_id
FOR UPDATE;

-- name: LockReservedStocks :exec
-- Locks the stock rows the given orders have reservations on, in the same
-- global order as LockStocks.
SELECT s.sku FROM stocks s
JOIN reservations r ON r.sku = s.sku AND r.warehouse_id = s.warehouse_id
WHERE r.order_id = ANY(@order_ids::bigint[])
ORDER BY s.sku, s.warehouse_id
FOR UPDATE OF s;

-- name: ReserveStocks :exec
-- Adds to each row's reserved units; one element per stock row (an UPDATE
-- applies only one of several source rows that match the same target row).
UPDATE stocks s SET reserved = s.reserved + v.count
FROM (SELECT unnest(@skus::bigint[]) AS sku,
             unnest(@warehouse_ids::bigint[]) AS warehouse_id,
             unnest(@counts::bigint[]) AS count) v
WHERE s.sku = v.sku AND s.warehouse_id = v.warehouse_id;

-- name: InsertReservations :exec
INSERT INTO reservations (order_id, sku, warehouse_id, count)
SELECT unnest(@order_ids::bigint[]), unnest(@skus::bigint[]), unnest(@warehouse_ids::bigint[]), unnest(@counts::bigint[]);

-- name: ReleaseReservations :exec
-- Returns the given orders' reserved units to the available stock, summed
-- per stock row first: several orders may hold units of one row.
WITH r AS (
    DELETE FROM reservations WHERE order_id = ANY(@order_ids::bigint[]) RETURNING sku, warehouse_id, count
), per_row AS (
    SELECT sku, warehouse_id, sum(count)::bigint AS count FROM r GROUP BY sku, warehouse_id
)
UPDATE stocks s SET reserved = s.reserved - per_row.count
FROM per_row WHERE s.sku = per_row.sku AND s.warehouse_id = per_row.warehouse_id;

-- name: WriteOffReservations :exec
-- Ships the given orders' reserved units: they leave both the reserved and
-- the total count.
WITH r AS (
    DELETE FROM reservations WHERE order_id = ANY(@order_ids::bigint[]) RETURNING sku, warehouse_id, count
), per_row AS (
    SELECT sku, warehouse_id, sum(count)::bigint AS count FROM r GROUP BY sku, warehouse_id
)
UPDATE stocks s SET reserved = s.reserved - per_row.count, total = s.total - per_row.count
FROM per_row WHERE s.sku = per_row.sku AND s.warehouse_id = per_row.warehouse_id;

-- name: ListAvailableStocks :many
SELECT warehouse_id, (total - reserved)::bigint AS available FROM stocks
WHERE sku = @sku AND total > reserved
ORDER BY warehouse_id;

-- name: SeedStocks :execrows
-- Adds stock rows that do not exist yet; existing rows keep their counts.
INSERT INTO stocks (sku, warehouse_id, total)
SELECT unnest(@skus::bigint[]), unnest(@warehouse_ids::bigint[]), unnest(@totals::bigint[])
ON CONFLICT (sku, warehouse_id) DO NOTHING;
