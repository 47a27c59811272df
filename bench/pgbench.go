package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/minizon/minizon/services/loms/store"
)

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// runPgbench runs bench/pgbench/<script>.sql, after a warm-up, and reads
// its rate and its latency from the per-transaction log.
func (e *env) runPgbench(ctx context.Context, script string, clients int) (result, error) {
	file := filepath.Join("bench", "pgbench", script+".sql")
	// pgbench runs whole seconds.
	secs := func(d time.Duration) int { return max(1, int(d.Seconds())) }
	args := func(d time.Duration) []string {
		// Every script gets every variable; each reads those it needs.
		return []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", "2",
			"-T", strconv.Itoa(secs(d)), "-f", file,
			"-D", "nskus=" + strconv.Itoa(e.cfg.skus), "-D", "hotsku=" + strconv.Itoa(e.cfg.hotSKU())}
	}
	resume, err := e.pauseRelay(ctx)
	if err != nil {
		return result{}, err
	}
	defer func() {
		if err := resume(); err != nil {
			log.Printf("pgbench %s: %v", script, err)
		}
	}()
	if e.cfg.warmup > 0 {
		if out, err := command(ctx, e.pgbench, append(args(e.cfg.warmup), e.dbURL)...).Output(); err != nil {
			return result{}, fmt.Errorf("pgbench %s warm-up: %w\n%s", script, err, out)
		}
	}
	logDir := filepath.Join(e.cfg.out, fmt.Sprintf("pgbench-%s-%d", script, clients))
	if err := os.RemoveAll(logDir); err != nil {
		return result{}, err
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return result{}, err
	}
	cmd := command(ctx, e.pgbench, append(args(e.cfg.duration), "-l", "--log-prefix="+filepath.Join(logDir, "tx"), e.dbURL)...)
	before := e.cpuNow()
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("pgbench %s: %w\n%s", script, err, out)
	}
	cpu := since(before, e.cpuNow(), cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	m := tpsLine.FindSubmatch(out)
	if m == nil {
		return result{}, fmt.Errorf("pgbench %s: no tps in its output:\n%s", script, out)
	}
	tps, _ := strconv.ParseFloat(string(m[1]), 64)
	// pgbench 15 and later report failed transactions; a failed one is
	// logged as "failed" instead of a latency.
	if !strings.Contains(string(out), "number of failed transactions: 0 ") {
		return result{}, fmt.Errorf("pgbench %s: transactions failed:\n%s", script, out)
	}
	p50, p99, err := pgbenchLatency(logDir)
	if err != nil {
		return result{}, err
	}
	log.Printf("pgbench %s, %d clients: %.0f tps, p99 %.2f ms", script, clients, tps, p99)
	return result{RPS: tps, P50: p50, P99: p99, CPU: cpu, Requests: tps * float64(secs(e.cfg.duration))}, nil
}

// pauseRelay keeps LOMS's outbox relay from publishing pgbench's events: it
// holds the relay's advisory lock (every relay then finds it taken and
// waits) until resume, which first deletes the outbox rows written since
// the pause. LOMS takes no orders while pgbench runs and its own events are
// all in Kafka before a pgbench run starts, so those rows are pgbench's.
func (e *env) pauseRelay(ctx context.Context) (resume func() error, err error) {
	conn, err := e.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("pause the relay: %w", err)
	}
	var last int64
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(store.RelayLockKey)); err != nil {
		conn.Release()
		return nil, fmt.Errorf("pause the relay: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT COALESCE(max(id), 0) FROM outbox").Scan(&last); err != nil {
		conn.Release()
		return nil, fmt.Errorf("pause the relay: %w", err)
	}
	return func() error {
		defer conn.Release()
		ctx := context.WithoutCancel(ctx)
		_, derr := conn.Exec(ctx, "DELETE FROM outbox WHERE id > $1", last)
		_, uerr := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", int64(store.RelayLockKey))
		if err := errors.Join(derr, uerr); err != nil {
			// A connection that may still hold the lock must not go back.
			_ = conn.Conn().Close(ctx)
			return fmt.Errorf("resume the relay: %w", err)
		}
		return nil
	}, nil
}

// pgbenchLatency reads the median and p99 in milliseconds from pgbench's
// per-transaction logs ("client tx latency_us script epoch epoch_us" per
// line).
func pgbenchLatency(dir string) (p50, p99 float64, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx*"))
	if err != nil || len(files) == 0 {
		return 0, 0, fmt.Errorf("no pgbench log in %s", dir)
	}
	h := hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("pgbench log %s: %q", f, line)
			}
			_ = h.RecordValue(us)
		}
	}
	ms := func(q float64) float64 { return float64(h.ValueAtQuantile(q)) / 1000 }
	return ms(50), ms(99), nil
}
