-- name: InsertOutbox :exec
-- One row per event; an empty trace context is stored as NULL.
INSERT INTO outbox (event_id, order_id, payload, created_at, traceparent, tracestate)
SELECT e.event_id, e.order_id, e.payload, @created_at::timestamptz, NULLIF(e.traceparent, ''), NULLIF(e.tracestate, '')
FROM (SELECT unnest(@event_ids::uuid[]) AS event_id, unnest(@order_ids::bigint[]) AS order_id,
             unnest(@payloads::bytea[]) AS payload, unnest(@traceparents::text[]) AS traceparent,
             unnest(@tracestates::text[]) AS tracestate) e;

-- name: TryLockRelay :one
-- One relay at a time publishes, whatever the number of replicas: the
-- transaction-scoped advisory lock keeps per-order event order intact.
SELECT pg_try_advisory_xact_lock(@key::bigint);

-- name: ListUnsentOutbox :many
-- Every row in the outbox waits to be published.
SELECT id, event_id, order_id, payload, traceparent, tracestate FROM outbox
ORDER BY id
LIMIT @max_rows;

-- name: DeletePublishedOutbox :exec
DELETE FROM outbox WHERE id = ANY(@ids::bigint[]);

-- name: DeleteOutboxEvents :exec
-- Rows whose records a relay found already in Kafka.
DELETE FROM outbox WHERE event_id = ANY(@event_ids::uuid[]);

-- name: ListOutboxPartitions :many
SELECT partition, next_offset FROM outbox_partitions;

-- name: SaveOutboxPartitions :exec
INSERT INTO outbox_partitions (partition, next_offset)
SELECT unnest(@partitions::integer[]), unnest(@next_offsets::bigint[])
ON CONFLICT (partition) DO UPDATE SET next_offset = EXCLUDED.next_offset;

-- name: OutboxBacklog :one
-- Unsent events and how long the oldest has waited, for /metrics.
-- The oldest is the first by id; created_at comes from the application's
-- clock, so the age is kept from going negative.
SELECT
    (SELECT count(*) FROM outbox)::bigint AS unsent,
    COALESCE((SELECT GREATEST(EXTRACT(EPOCH FROM now() - created_at), 0) FROM outbox
        ORDER BY id LIMIT 1), 0)::float8 AS oldest_age_seconds;
