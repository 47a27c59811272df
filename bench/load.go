package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/minizon/minizon/internal/loadgen"
)

// loadRun is one `minizon bench` run against LOMS.
type loadRun struct {
	protocol, scenario string
	clients            int
	// skus is -skus; "" is every spread sku, 1 to -skus.
	skus string
	// extra are more flags.
	extra []string
	// addr is the LOMS loaded; "" is the measured one.
	addr string
}

// spreadOrders is create-order on the spread skus, orders left awaiting
// payment as pgbench leaves them.
func spreadOrders(protocol string, clients int) loadRun {
	return loadRun{protocol: protocol, scenario: "create-order", clients: clients, extra: []string{"-settle", loadgen.SettleNone}}
}

func (e *env) args(run loadRun) []string {
	skus := run.skus
	if skus == "" {
		skus = fmt.Sprintf("1-%d", e.cfg.skus)
	}
	return append([]string{"bench", "-addr", cmp.Or(run.addr, e.loms.addr), "-protocol", run.protocol, "-scenario", run.scenario,
		"-c", strconv.Itoa(run.clients), "-d", e.cfg.duration.String(), "-warmup", e.cfg.warmup.String(),
		"-skus", skus, "-json"}, run.extra...)
}

// load runs `minizon bench` against LOMS.
func (e *env) load(ctx context.Context, run loadRun) (result, error) {
	args := e.args(run)
	cmd := command(ctx, e.cfg.minizon, args...)
	// Its stderr holds the progress lines and, on failure, the error.
	var stderr strings.Builder
	cmd.Stderr = &stderr
	before := e.cpuNow()
	out, err := cmd.Output()
	if err != nil {
		tail := stderr.String()
		if i := strings.LastIndexByte(strings.TrimRight(tail, "\n"), '\n'); i >= 0 {
			tail = tail[i+1:]
		}
		return result{}, fmt.Errorf("minizon %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(tail))
	}
	cpu := since(before, e.cpuNow(), cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	var sum loadgen.Summary
	if err := json.Unmarshal(out, &sum); err != nil {
		return result{}, fmt.Errorf("minizon bench output: %w", err)
	}
	primary := sum.RPC(sum.Primary)
	// Only successful calls count, as pgbench counts only committed
	// transactions: fast failures must not flatter a ratio.
	rps := float64(primary.OK) / sum.DurationSeconds
	// The warm-up ran at about the measured rate; its CPU is in the
	// process's total.
	requests := sum.RPS * (e.cfg.warmup + e.cfg.duration).Seconds()
	return result{RPS: rps, P50: primary.Latency.P50, P99: primary.Latency.P99, Errors: sum.Errors(), CPU: cpu, Requests: requests}, nil
}

// orderRun is what a run that creates orders came to.
type orderRun struct {
	result result
	outbox outboxResult
	// maxRSS is the measured LOMS's largest resident set seen during the
	// run, in MiB, whichever LOMS the run loaded.
	maxRSS float64
	// failed counts the run's orders that ended FAILED, warm-up included.
	failed int64
}

// createOrders runs a load that creates orders while sampling the outbox's
// oldest unsent event and LOMS's memory, then waits for every event of the
// run to reach Kafka, so that no relay work spills into the next run.
func (e *env) createOrders(ctx context.Context, run loadRun) (orderRun, error) {
	var o orderRun
	eventsBefore, err := e.kafkaRecords(ctx)
	if err != nil {
		return o, err
	}
	// Orders of this run are those with a larger id (ids only grow).
	var lastBefore int64
	if err := e.pool.QueryRow(ctx, "SELECT COALESCE(max(id), 0) FROM orders").Scan(&lastBefore); err != nil {
		return o, fmt.Errorf("last order: %w", err)
	}
	stop := e.sample(ctx)
	o.result, err = e.load(ctx, run)
	end := time.Now()
	o.outbox.MaxOldestUnsentSeconds, o.maxRSS = stop()
	if err != nil {
		return o, err
	}
	o.outbox, o.failed, err = e.drain(ctx, lastBefore, eventsBefore, end, o.outbox)
	return o, err
}

// sample watches the age of the oldest unsent event and LOMS's memory every
// 100 ms until the returned func is called, which reports the largest of
// each.
func (e *env) sample(ctx context.Context) (stop func() (oldestUnsent, maxRSS float64)) {
	sctx, cancel := context.WithCancel(ctx)
	samples := make(chan [2]float64, 1)
	go func() {
		var oldest, rss float64
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				samples <- [2]float64{oldest, rss}
				return
			case <-t.C:
			}
			var age float64
			if err := e.pool.QueryRow(sctx, `SELECT COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
				FROM outbox`).Scan(&age); err == nil {
				oldest = max(oldest, age)
			}
			if r, err := e.rss("VmRSS"); err == nil {
				rss = max(rss, r)
			}
		}
	}()
	return func() (float64, float64) {
		cancel()
		s := <-samples
		return s[0], s[1]
	}
}

// drain waits until Kafka holds every event of the orders after lastBefore
// and counts those that failed.
func (e *env) drain(ctx context.Context, lastBefore, eventsBefore int64, end time.Time, ob outboxResult) (outboxResult, int64, error) {
	for {
		// Every order, warm-up included, made two events: created, then
		// awaiting payment (or failed). Orders are counted again each time:
		// a call the load generator gave up on at the end may still commit.
		var orders, failed int64
		if err := e.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'failed')
			FROM orders WHERE id > $1`, lastBefore).Scan(&orders, &failed); err != nil {
			return ob, 0, fmt.Errorf("count the run's orders: %w", err)
		}
		ob.EventsWanted = 2 * orders
		n, err := e.kafkaRecords(ctx)
		if err != nil {
			return ob, 0, err
		}
		ob.Events = n - eventsBefore
		if ob.Events >= ob.EventsWanted {
			ob.DrainedSeconds = time.Since(end).Seconds()
			return ob, failed, nil
		}
		if time.Since(end) > time.Minute {
			return ob, 0, fmt.Errorf("only %d of %d events reached Kafka a minute after the run", ob.Events, ob.EventsWanted)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
