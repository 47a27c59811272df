-- +goose Up
-- Every committed status change of an order that a watcher can see (out of
-- awaiting_payment; the change out of 'new' is made in the transaction that
-- creates the order, before anyone knows its id) is announced on the
-- channel loms_order_status, to every LOMS replica, as the changed orders'
-- ids, comma-separated, up to 300 per notification (well inside the 8000
-- bytes a payload may hold). Postgres delivers a notification at commit
-- and not at all on rollback, so a listener hears exactly the changes that
-- happened. A trigger, not the application, sends it: every write path, an
-- operator's SQL included, is covered.
--
-- The creating transaction sends nothing, so the hot CreateOrder path does
-- not take the lock that serializes the commits of notifying transactions.

-- +goose StatementBegin
CREATE FUNCTION notify_order_status() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids text;
BEGIN
    FOR ids IN
        SELECT string_agg(c.id::text, ',')
        FROM (SELECT n.id, (row_number() OVER (ORDER BY n.id) - 1) / 300 AS chunk
              FROM changed_rows n JOIN previous_rows p ON p.id = n.id
              WHERE n.status <> p.status AND p.status <> 'new') c
        GROUP BY c.chunk
    LOOP
        PERFORM pg_notify('loms_order_status', ids);
    END LOOP;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER orders_notify_status AFTER UPDATE ON orders
REFERENCING OLD TABLE AS previous_rows NEW TABLE AS changed_rows
FOR EACH STATEMENT EXECUTE FUNCTION notify_order_status();

-- +goose Down
DROP TRIGGER orders_notify_status ON orders;
DROP FUNCTION notify_order_status();
