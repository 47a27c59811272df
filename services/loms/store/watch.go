package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// OrderStatusChannel is where the database announces committed status
// changes of orders, as comma-separated order ids (migration 00007's
// trigger).
const OrderStatusChannel = "loms_order_status"

// ListenerName is the application_name of the listening connection.
const ListenerName = "loms order status listener"

// listenCheck is how long a quiet listening connection waits before it
// checks that the server is still there: a server that vanished without
// closing the connection would otherwise leave the listener deaf until TCP
// gives up, minutes later.
const listenCheck = 10 * time.Second

// States returns the current state of each given order that exists.
func (s *Store) States(ctx context.Context, ids []int64) ([]order.State, error) {
	rows, err := db.New(s.pool).GetOrderStates(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("read order states: %w", err)
	}
	out := make([]order.State, len(rows))
	for i, r := range rows {
		status, err := order.ParseStatus(string(r.Status))
		if err != nil {
			return nil, err
		}
		out[i] = order.State{ID: r.ID, Status: status, ChangedAt: r.UpdatedAt, PayBy: r.PayBy}
	}
	return out, nil
}

// ListenChanges listens on a connection of its own, outside the pool, for
// the ids of orders whose status changed, in commit order. It calls
// listening once every change committed from then on will be heard, and
// changed for each announcement. It returns nil when ctx is done, or the
// error that lost the connection: changes committed until the caller
// listens again are not heard.
func (s *Store) ListenChanges(ctx context.Context, listening func(), changed func(ids []int64)) error {
	cfg := s.pool.Config().ConnConfig.Copy()
	// Named, so that an operator sees in pg_stat_activity what it is.
	cfg.RuntimeParams["application_name"] = ListenerName
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return ignoreDone(ctx, fmt.Errorf("connect to listen: %w", err))
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+OrderStatusChannel); err != nil {
		return ignoreDone(ctx, fmt.Errorf("listen: %w", err))
	}
	listening()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenCheck)
		n, err := conn.WaitForNotification(wctx)
		quiet := wctx.Err() != nil && ctx.Err() == nil
		cancel()
		switch {
		case err == nil:
			changed(parseIDs(n.Payload))
		case ctx.Err() != nil:
			return nil
		case quiet:
			pctx, cancel := context.WithTimeout(ctx, listenCheck)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return ignoreDone(ctx, fmt.Errorf("listening connection: %w", err))
			}
		default:
			return fmt.Errorf("wait for order status changes: %w", err)
		}
	}
}

// ignoreDone drops err when ctx is done: the caller asked to stop.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// parseIDs reads an announcement's ids. What is not an id is skipped: only
// a NOTIFY sent by hand on the channel holds anything else.
func parseIDs(payload string) []int64 {
	ids := make([]int64, 0, strings.Count(payload, ",")+1)
	for f := range strings.SplitSeq(payload, ",") {
		if id, err := strconv.ParseInt(f, 10, 64); err == nil && id > 0 {
			ids = append(ids, id)
		}
	}
	return ids
}
