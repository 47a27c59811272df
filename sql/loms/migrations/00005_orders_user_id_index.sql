-- +goose NO TRANSACTION
-- +goose Up
-- ListOrders pages through one user's orders newest first, by id (keyset:
-- WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT n). Without this
-- index Postgres walks the primary key backwards past every other user's
-- orders; with it, any page of any user is one short index range scan.
-- CONCURRENTLY keeps CreateOrder writing while the index of a live orders
-- table is built; it cannot run inside a transaction, hence NO TRANSACTION.
-- If the build fails it leaves an INVALID index behind: drop it and migrate
-- again.
CREATE INDEX CONCURRENTLY orders_user_id_id ON orders (user_id, id DESC);

-- +goose Down
DROP INDEX CONCURRENTLY orders_user_id_id;
