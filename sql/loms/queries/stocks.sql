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

-- name: ReceiveStocks :execrows
-- Adds units to one warehouse's stock, creating the rows of skus it did not
-- hold; one element per sku, in one statement and so one transaction. The
-- rows are inserted or locked in sku order (ORDER BY feeds the INSERT in
-- that order), which within one warehouse is the global (sku, warehouse_id)
-- order that LockStocks follows, so a receipt cannot deadlock with orders
-- or with other receipts.
--
-- A non-empty idempotency key is recorded in the same statement: if it
-- already was, no row is touched and 0 is returned. A concurrent receipt
-- with the same key is waited for on the key's primary key; if it commits,
-- this one adds nothing.
WITH receipt AS (
    INSERT INTO stock_receipts (idempotency_key, warehouse_id, received_at)
    SELECT @idempotency_key::text, @warehouse_id::bigint, @received_at::timestamptz
    WHERE @idempotency_key::text <> ''
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING idempotency_key
)
INSERT INTO stocks AS s (sku, warehouse_id, total)
SELECT v.sku, @warehouse_id::bigint, v.count
FROM (SELECT unnest(@skus::bigint[]) AS sku, unnest(@counts::bigint[]) AS count) v
WHERE @idempotency_key::text = '' OR EXISTS (SELECT FROM receipt)
ORDER BY v.sku
ON CONFLICT (sku, warehouse_id) DO UPDATE SET total = s.total + EXCLUDED.total;
