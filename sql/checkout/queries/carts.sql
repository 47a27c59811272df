-- name: LockCart :one
-- Creates the user's cart row if missing and locks it until the transaction
-- ends; returns the purchase in progress and the last one placed, if any.
INSERT INTO carts AS c (user_id) VALUES (@user_id)
ON CONFLICT (user_id) DO UPDATE SET updated_at = now()
RETURNING c.purchase_key, c.last_order_id, c.last_order_status;

-- name: SetPurchase :exec
UPDATE carts SET
    purchase_key = sqlc.narg(purchase_key),
    last_order_id = sqlc.narg(last_order_id),
    last_order_status = sqlc.narg(last_order_status)
WHERE user_id = @user_id;

-- name: DeleteCart :exec
-- Removes a cart with nothing to remember; its items go with it.
DELETE FROM carts WHERE user_id = @user_id;
