package store

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// A round trip to Postgres is an explicit pgx.Batch: its statements go out
// together and Postgres runs them in order, skipping the rest after the
// first failure. A durable transaction spends its time waiting for the
// server, and a write transaction holds its row locks all the while, so the
// store sends each transaction in as few round trips as its logic allows,
// one function per round trip, statements in the order they run. Each
// statement's SQL is sqlc's (the exported query constants of
// internal/db); its arguments follow the query's @parameters in order.

// execIn queues a statement whose only result is its success; what names it
// in an error.
func execIn(b *pgx.Batch, what, sql string, args ...any) {
	b.Queue(sql, args...).Fn = func(br pgx.BatchResults) error {
		_, err := br.Exec()
		return wrap(what, err)
	}
}

// rowsIn queues a query whose rows are scanned into *out, column by column
// in the order of T's fields (sqlc's row types).
func rowsIn[T any](b *pgx.Batch, out *[]T, what, sql string, args ...any) {
	b.Queue(sql, args...).Fn = func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return wrap(what, err)
		}
		*out, err = pgx.CollectRows(rows, pgx.RowToStructByPos[T])
		return wrap(what, err)
	}
}

// valuesIn queues a query of one column whose values are collected into
// *out.
func valuesIn[T any](b *pgx.Batch, out *[]T, what, sql string, args ...any) {
	b.Queue(sql, args...).Fn = func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return wrap(what, err)
		}
		*out, err = pgx.CollectRows(rows, pgx.RowTo[T])
		return wrap(what, err)
	}
}

// send runs b's statements in one round trip. The first error is returned;
// a transaction it leaves open is rolled back by withConn.
func send(ctx context.Context, conn *pgx.Conn, b *pgx.Batch) error {
	return conn.SendBatch(ctx, b).Close()
}
