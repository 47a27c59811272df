-- name: InsertNotification :execrows
-- Claims the event: 0 rows when it was already notified about. A concurrent
-- claim of the same event waits here until the first one commits or rolls
-- back.
INSERT INTO notifications (event_id, order_id, user_id, status, previous_status, message, occurred_at, outcome)
VALUES (@event_id, @order_id, @user_id, @status, @previous_status, @message, @occurred_at, 'sent')
ON CONFLICT (event_id) DO NOTHING;

-- name: MarkNotificationFailed :exec
UPDATE notifications SET outcome = 'failed', failure = @failure WHERE event_id = @event_id;

-- name: ListOrderNotifications :many
SELECT event_id, order_id, user_id, status, previous_status, message, occurred_at, outcome, failure
FROM notifications
WHERE order_id = @order_id
ORDER BY id;
