-- name: GetProduct :one
SELECT sku, name, price FROM products WHERE sku = @sku;

-- name: ListSkus :many
-- One page of skus in ascending order, served by the primary key's index.
SELECT sku FROM products
WHERE sku > @start_after_sku
ORDER BY sku
LIMIT sqlc.arg(max_skus);

-- name: UpsertProducts :one
-- Inserts new skus and updates changed ones, and counts both. Rows whose
-- name and price are already stored are left alone, so re-importing a file
-- writes nothing for them. xmax is 0 only on a row this statement inserted:
-- an updated row carries the updating transaction's id.
-- The skus must be distinct: one statement cannot update a row twice.
WITH written AS (
    INSERT INTO products AS p (sku, name, price)
    SELECT unnest(@skus::bigint[]), unnest(@names::text[]), unnest(@prices::bigint[])
    ON CONFLICT (sku) DO UPDATE
        SET name = excluded.name, price = excluded.price, updated_at = now()
        WHERE (p.name, p.price) IS DISTINCT FROM (excluded.name, excluded.price)
    RETURNING (p.xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted)::bigint     AS inserted,
       count(*) FILTER (WHERE NOT inserted)::bigint AS updated
FROM written;

-- name: InsertMissingProducts :execrows
-- Adds skus that do not exist yet; existing rows keep their name and price.
INSERT INTO products (sku, name, price)
SELECT unnest(@skus::bigint[]), unnest(@names::text[]), unnest(@prices::bigint[])
ON CONFLICT (sku) DO NOTHING;
