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
// it returned no error, as any Go code does, and must run the same query
// both times (checked: a different one fails the step).
//
// A batch that ends in COMMIT commits whatever Postgres ran without error:
// only steps that cannot fail after their statement succeeded (:exec
// queries) belong in it. And, as with any commit, a caller that gives up
// during that last round trip cannot know whether it committed.
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
	p.reads = append(p.reads, func(br pgx.BatchResults) error {
		return step(db.New(batchResult{br: br, sql: rec.sql}))
	})
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
	return errRow{err: errRecorded}
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchResult is a db.DBTX that answers a step's call with the next result
// of a sent batch, provided the step runs the query it was recorded with.
type batchResult struct {
	br  pgx.BatchResults
	sql string
}

// errStepChanged: a step ran another query than when it was recorded, so
// the result at hand is not its own.
var errStepChanged = errors.New("pipeline: step ran a different query than recorded")

func (b batchResult) Exec(_ context.Context, sql string, _ ...any) (pgconn.CommandTag, error) {
	if sql != b.sql {
		return pgconn.CommandTag{}, errStepChanged
	}
	return b.br.Exec()
}

func (b batchResult) Query(_ context.Context, sql string, _ ...any) (pgx.Rows, error) {
	if sql != b.sql {
		return nil, errStepChanged
	}
	return b.br.Query()
}

func (b batchResult) QueryRow(_ context.Context, sql string, _ ...any) pgx.Row {
	if sql != b.sql {
		return errRow{err: errStepChanged}
	}
	return b.br.QueryRow()
}
