-- name: LockCart :one
-- Creates the user's cart row if missing and locks it until the transaction
-- ends; returns the purchase in progress, if any.
INSERT INTO carts AS c (user_id) VALUES (@user_id)
ON CONFLICT (user_id) DO UPDATE SET updated_at = now()
RETURNING c.purchase_key;

-- name: SetPurchaseKey :exec
UPDATE carts SET purchase_key = sqlc.narg(purchase_key) WHERE user_id = @user_id;

-- name: DeleteCart :exec
-- Removes an empty cart with no purchase in progress; its items go with it.
DELETE FROM carts WHERE user_id = @user_id;
