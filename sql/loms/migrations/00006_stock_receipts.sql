-- +goose Up
-- One row per ReceiveStock call that carried an idempotency key, written in
-- the transaction that added its units: a retry with the same key finds it
-- and adds nothing. A retry that arrives while the first call is still
-- running waits for it on the primary key, then finds it.
CREATE TABLE stock_receipts (
    idempotency_key text        PRIMARY KEY,
    warehouse_id    bigint      NOT NULL CHECK (warehouse_id > 0),
    received_at     timestamptz NOT NULL
);

-- +goose Down
DROP TABLE stock_receipts;
