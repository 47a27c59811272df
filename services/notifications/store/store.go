// Package store records Notifications' deliveries in Postgres, keyed by
// event id, so that each event is notified about once. sqlc rows never
// leave this package.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/services/notifications/notification"
	"github.com/minizon/minizon/services/notifications/store/internal/db"
)

// Store is the Postgres record of notifications.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Deliver sends n once: in one transaction it claims the event id, calls
// send, and commits the record only if send succeeded or was rejected for
// good (an error wrapping notification.ErrRejected, recorded as failed).
// Any other send error rolls the claim back and is returned, to be retried.
// An event already recorded is not sent again (Duplicate); a concurrent
// delivery of the same event waits for the first one's outcome.
//
// One window is left, as with any external side effect: a crash after send
// returned and before the commit sends the event again on redelivery.
// Receivers get the event id to de-duplicate that case themselves.
func (s *Store) Deliver(ctx context.Context, n notification.Notification,
	send func(context.Context, notification.Notification) error) (notification.Outcome, error) {
	outcome := notification.Sent
	// The transaction outlives ctx by a little: a send that succeeded just
	// before ctx's deadline must still be committed, or the event would be
	// sent again. Cancelling ctx still stops a send, and so the delivery.
	txCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitGrace(ctx))
	defer cancel()
	err := pgx.BeginTxFunc(txCtx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		q := db.New(tx)
		claimed, err := q.InsertNotification(txCtx, db.InsertNotificationParams{
			EventID:        pgtype.UUID{Bytes: n.EventID, Valid: true},
			OrderID:        n.OrderID,
			UserID:         n.User,
			Status:         string(n.Status),
			PreviousStatus: string(n.Previous),
			Message:        n.Text(),
			OccurredAt:     n.OccurredAt,
		})
		if err != nil {
			return fmt.Errorf("record notification: %w", err)
		}
		if claimed == 0 {
			outcome = notification.Duplicate
			return nil
		}
		err = send(ctx, n)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, notification.ErrRejected):
			outcome = notification.Failed
			if err := q.MarkNotificationFailed(txCtx, db.MarkNotificationFailedParams{
				EventID: pgtype.UUID{Bytes: n.EventID, Valid: true},
				Failure: pgtype.Text{String: text(err.Error()), Valid: true},
			}); err != nil {
				return fmt.Errorf("record failed notification: %w", err)
			}
			return nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("deliver event %s: %w", n.EventID, err)
	}
	return outcome, nil
}

// commitGrace is how long the transaction may take: ctx's time left plus
// a few seconds for the commit, or a minute when ctx has no deadline.
func commitGrace(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d) + 5*time.Second
	}
	return time.Minute
}

// text makes s storable as Postgres text: valid UTF-8 without NUL bytes.
func text(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), "?")
}

// ForOrder returns an order's notifications in the order they were made.
func (s *Store) ForOrder(ctx context.Context, orderID int64) ([]notification.Record, error) {
	rows, err := db.New(s.pool).ListOrderNotifications(ctx, orderID)
	if err != nil {
		return nil, fmt.Errorf("list notifications of order %d: %w", orderID, err)
	}
	out := make([]notification.Record, len(rows))
	for i, r := range rows {
		outcome := notification.Sent
		if r.Outcome == "failed" {
			outcome = notification.Failed
		}
		out[i] = notification.Record{
			Notification: notification.Notification{
				EventID: uuid.UUID(r.EventID.Bytes), OrderID: r.OrderID, User: r.UserID,
				Status: notification.Status(r.Status), Previous: notification.Status(r.PreviousStatus),
				OccurredAt: r.OccurredAt,
			},
			Text: r.Message, Outcome: outcome, Failure: r.Failure.String,
		}
	}
	return out, nil
}
