-- +goose Up
-- A published event leaves the outbox instead of being marked sent: an
-- UPDATE writes a new copy of the row, payload included, and new entries in
-- its indexes (sent_at was in two of them, so it was never a HOT update),
-- twice for every order made; a DELETE only marks the row dead. Published
-- events are read from Kafka, which keeps them. Rows already marked sent
-- go now, and with them the column and its indexes.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_unsent;
DROP INDEX outbox_sent_at;
ALTER TABLE outbox DROP COLUMN sent_at;

-- +goose Down
ALTER TABLE outbox ADD COLUMN sent_at timestamptz;
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;
CREATE INDEX outbox_sent_at ON outbox (sent_at) WHERE sent_at IS NOT NULL;
