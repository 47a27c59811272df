-- +goose Up
-- The W3C trace context of the request that made the change, passed on in
-- the Kafka record's headers so that consumers' spans link to it.
ALTER TABLE outbox ADD COLUMN traceparent text, ADD COLUMN tracestate text;

-- +goose Down
ALTER TABLE outbox DROP COLUMN traceparent, DROP COLUMN tracestate;
