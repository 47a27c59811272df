-- +goose Up
-- One row per order event notified about, keyed by the event id: a
-- redelivered event finds its row and is not notified again. A row is
-- written in the transaction that delivers the notification, so a committed
-- row was delivered (or failed for good, with the reason).
CREATE TABLE notifications (
    event_id        uuid        PRIMARY KEY,
    -- Processing order, for reading one order's notifications in sequence.
    id              bigint      GENERATED ALWAYS AS IDENTITY UNIQUE,
    order_id        bigint      NOT NULL,
    user_id         bigint      NOT NULL,
    status          text        NOT NULL,
    previous_status text        NOT NULL,
    message         text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    -- sent, or failed when the receiver refused it for good.
    outcome         text        NOT NULL CHECK (outcome IN ('sent', 'failed')),
    failure         text
);

CREATE INDEX notifications_order ON notifications (order_id, id);

-- +goose Down
DROP TABLE notifications;
