-- +goose Up
-- The catalog: one row per sku. The checks mirror the API's types (sku and
-- price are uint32 on the wire, sku 0 means "none") and the import's rules,
-- so that no writer can store what GetProduct could not return.
CREATE TABLE products (
    sku        bigint      PRIMARY KEY CHECK (sku BETWEEN 1 AND 4294967295),
    name       text        NOT NULL CHECK (name <> '' AND char_length(name) <= 200),
    price      bigint      NOT NULL CHECK (price BETWEEN 0 AND 4294967295),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE products;
