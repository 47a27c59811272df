package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// PublishBatch implements outbox.Source in two round trips around the
// publishing: the lock and the reads, then the deletes and the commit.
func (s *Store) PublishBatch(ctx context.Context, max int,
	publish func(context.Context, outbox.Batch) (outbox.Published, error)) (int, error) {
	n := 0
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var (
			locked     []bool
			rows       []db.ListUnsentOutboxRow
			partitions []db.OutboxPartition
		)
		b := &pgx.Batch{}
		b.Queue(beginTx)
		valuesIn(b, &locked, "lock relay", db.TryLockRelay, int64(RelayLockKey))
		// Read in the same round trip; the rows are ignored when another
		// relay holds the lock.
		rowsIn(b, &rows, "list unsent outbox rows", db.ListUnsentOutbox, int32(max))
		rowsIn(b, &partitions, "list outbox partitions", db.ListOutboxPartitions)
		if err := send(ctx, conn, b); err != nil || !locked[0] || len(rows) == 0 {
			return err
		}
		// The first batch ever (or after upgrading) only stores where the
		// topic ends, in a commit of its own before anything is produced:
		// a relay dying during the next batch then leaves offsets that the
		// one after can reconcile against.
		if len(partitions) == 0 {
			rows = nil
		}
		batch := outbox.Batch{Messages: make([]outbox.Message, len(rows)), Next: make(map[int32]int64, len(partitions))}
		ids := make([]int64, len(rows))
		for i, r := range rows {
			batch.Messages[i] = outbox.Message{ID: r.ID, EventID: r.EventID.Bytes, OrderID: r.OrderID, Payload: r.Payload,
				TraceParent: r.Traceparent.String, TraceState: r.Tracestate.String}
			ids[i] = r.ID
		}
		for _, p := range partitions {
			batch.Next[p.Partition] = p.NextOffset
		}
		published, err := publish(ctx, batch)
		if err != nil {
			return err
		}
		b = &pgx.Batch{}
		execIn(b, "delete published outbox rows", db.DeletePublishedOutbox, ids)
		if len(published.Found) > 0 {
			found := make([]pgtype.UUID, len(published.Found))
			for i, id := range published.Found {
				found[i] = pgtype.UUID{Bytes: id, Valid: true}
			}
			execIn(b, "delete outbox rows found in the topic", db.DeleteOutboxEvents, found)
		}
		parts := make([]int32, 0, len(published.Next))
		next := make([]int64, 0, len(published.Next))
		for p, off := range published.Next {
			parts = append(parts, p)
			next = append(next, off)
		}
		execIn(b, "save outbox partitions", db.SaveOutboxPartitions, parts, next)
		b.Queue("COMMIT")
		if err := send(ctx, conn, b); err != nil {
			return err
		}
		n = len(rows)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("publish outbox batch: %w", err)
	}
	return n, nil
}
