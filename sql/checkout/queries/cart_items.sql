-- name: ListCartItems :many
SELECT sku, count FROM cart_items WHERE user_id = @user_id ORDER BY sku;

-- name: UpsertCartItems :exec
INSERT INTO cart_items (user_id, sku, count)
SELECT @user_id, unnest(@skus::bigint[]), unnest(@counts::integer[])
ON CONFLICT (user_id, sku) DO UPDATE SET count = excluded.count;

-- name: DeleteCartItems :exec
DELETE FROM cart_items WHERE user_id = @user_id AND sku = ANY(@skus::bigint[]);
