-- +goose Up
-- One row per user with a cart. The row is what a change locks, so changes
-- to one cart are serialised while different carts never wait on each other.
CREATE TABLE carts (
    user_id      bigint      PRIMARY KEY CHECK (user_id > 0),
    -- The idempotency key of the purchase in progress; NULL when none is.
    purchase_key      text        CHECK (char_length(purchase_key) BETWEEN 1 AND 128),
    -- The order the last purchase placed and its status then, kept until
    -- the items change, so that a repeated Purchase gets the same answer.
    last_order_id     bigint      CHECK (last_order_id > 0),
    last_order_status smallint,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    CHECK ((last_order_id IS NULL) = (last_order_status IS NULL))
);

CREATE TABLE cart_items (
    user_id bigint  NOT NULL REFERENCES carts (user_id) ON DELETE CASCADE,
    sku     bigint  NOT NULL CHECK (sku BETWEEN 1 AND 4294967295),
    count   integer NOT NULL CHECK (count BETWEEN 1 AND 65535),
    PRIMARY KEY (user_id, sku)
);

-- +goose Down
DROP TABLE cart_items;
DROP TABLE carts;
