-- +goose Up
-- How far the relay knows the topic holds its records: per partition, the
-- offset after the last record that a committed batch published. Records
-- beyond it were produced by a relay that died, or whose produce failed,
-- before it could mark its rows sent; the next relay reads them back instead
-- of producing them again, so that every event is in Kafka exactly once.
CREATE TABLE outbox_partitions (
    partition   integer PRIMARY KEY CHECK (partition >= 0),
    next_offset bigint  NOT NULL CHECK (next_offset >= 0)
);

-- +goose Down
DROP TABLE outbox_partitions;
