package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// pipeline sends several sqlc queries in one round trip (a pgx batch: the
// statements go out together and Postgres runs them in order). A durable
// transaction spends its time waiting for the server, so every round trip
// saved is latency saved while its row locks are held.
//
// A step is a function that calls one sqlc method. It runs twice: first
// against a recorder, which captures the statement and its arguments and
// makes the method fail at once, then, after the round trip, against the
// statement's result. So a step must act on the method's results only when
// it returned no error, as any Go code does.
type pipeline struct {
	batch pgx.Batch
	reads []func(pgx.BatchResults) error
}

// add queues step's query.
func (p *pipeline) add(step func(q *db.Queries) error) {
	rec := &recorder{}
	if err := step(db.New(rec)); !errors.Is(err, errRecorded) {
		// A step that ran no query is a bug in this package.
		panic(fmt.Sprintf("pipeline step ran no query: %v", err))
	}
	p.batch.Queue(rec.sql, rec.args...)
	p.reads = append(p.reads, func(br pgx.BatchResults) error { return step(db.New(batchResult{br})) })
}

// exec queues a statement that takes no arguments, such as BEGIN or COMMIT.
func (p *pipeline) exec(sql string) {
	p.batch.Queue(sql)
	p.reads = append(p.reads, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
		return nil
	})
}

// send runs the queued statements on conn in one round trip and hands each
// step its result in order. After the first failure Postgres skips the rest,
// so the first error is the one returned.
func (p *pipeline) send(ctx context.Context, conn *pgx.Conn) error {
	br := conn.SendBatch(ctx, &p.batch)
	for _, read := range p.reads {
		if err := read(br); err != nil {
			_ = br.Close()
			return err
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	return nil
}

var errRecorded = errors.New("pipeline: statement recorded, not run")

// recorder is a db.DBTX that captures the one statement a step runs.
type recorder struct {
	sql  string
	args []any
}

func (r *recorder) record(sql string, args []any) { r.sql, r.args = sql, args }

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.record(sql, args)
	return pgconn.CommandTag{}, errRecorded
}

func (r *recorder) Query(_ context.Context, sql string, args ...any) (pgx.Rows, error) {
	r.record(sql, args)
	return nil, errRecorded
}

func (r *recorder) QueryRow(_ context.Context, sql string, args ...any) pgx.Row {
	r.record(sql, args)
	return errRow{}
}

type errRow struct{}

func (errRow) Scan(...any) error { return errRecorded }

// batchResult is a db.DBTX that answers each call with the next result of a
// sent batch.
type batchResult struct{ br pgx.BatchResults }

func (b batchResult) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	return b.br.Exec()
}

func (b batchResult) Query(context.Context, string, ...any) (pgx.Rows, error) { return b.br.Query() }

func (b batchResult) QueryRow(context.Context, string, ...any) pgx.Row { return b.br.QueryRow() }
