-- +goose Up
CREATE TYPE order_status AS ENUM ('new', 'awaiting_payment', 'failed', 'payed', 'cancelled');

CREATE TABLE orders (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id         bigint       NOT NULL CHECK (user_id > 0),
    status          order_status NOT NULL,
    -- NULL when the caller sent no key.
    idempotency_key text,
    created_at      timestamptz  NOT NULL,
    -- The end of the payment window; meaningful while awaiting payment.
    pay_by          timestamptz  NOT NULL,
    updated_at      timestamptz  NOT NULL
);

CREATE UNIQUE INDEX orders_user_idempotency_key ON orders (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- The sweeper's scan: only orders that can still expire are indexed.
CREATE INDEX orders_awaiting_payment_pay_by ON orders (pay_by)
    WHERE status = 'awaiting_payment';

CREATE TABLE order_items (
    order_id bigint NOT NULL REFERENCES orders (id),
    sku      bigint NOT NULL CHECK (sku > 0 AND sku <= 4294967295),
    count    bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (order_id, sku)
);

-- One row per sku and warehouse. The CHECK is the last line of defence
-- against overselling: no transaction can commit more reserved than held.
CREATE TABLE stocks (
    sku          bigint NOT NULL CHECK (sku > 0 AND sku <= 4294967295),
    warehouse_id bigint NOT NULL CHECK (warehouse_id > 0),
    total        bigint NOT NULL CHECK (total >= 0),
    reserved     bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0 AND reserved <= total),
    PRIMARY KEY (sku, warehouse_id)
);

-- Open reservations: rows exist only while their order awaits payment.
CREATE TABLE reservations (
    order_id     bigint NOT NULL REFERENCES orders (id),
    sku          bigint NOT NULL,
    warehouse_id bigint NOT NULL,
    count        bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (order_id, sku, warehouse_id),
    FOREIGN KEY (sku, warehouse_id) REFERENCES stocks (sku, warehouse_id)
);

-- Transactional outbox: one row per order status change, written in the
-- transaction that made the change, published to Kafka by the relay.
CREATE TABLE outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   uuid        NOT NULL UNIQUE,
    order_id   bigint      NOT NULL,
    payload    bytea       NOT NULL,
    created_at timestamptz NOT NULL,
    sent_at    timestamptz
);

CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
-- The retention clean-up's scan.
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE reservations;
DROP TABLE stocks;
DROP TABLE order_items;
DROP TABLE orders;
DROP TYPE order_status;
