package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/loadgen"
	"github.com/minizon/minizon/services/loms/outbox"
)

// lomsProcess is one running `minizon loms`.
type lomsProcess struct {
	cmd *exec.Cmd
	log *os.File
	// addr is its URL, for `minizon bench -addr`.
	addr string
}

// startLOMSes starts the measured LOMS, with its profiler on a debug port,
// and, with -baseline-bin, the baseline LOMS beside it on the same database
// and broker. The returned func stops both.
func (e *env) startLOMSes(ctx context.Context, brokers string) (stop func(), err error) {
	if e.debug, err = freeAddr(); err != nil {
		return nil, err
	}
	if e.loms, err = e.startLOMS(ctx, e.cfg.lomsBin, "loms.log", brokers, "MINIZON_DEBUG_ADDR="+e.debug); err != nil {
		return nil, err
	}
	if e.cfg.baselineBin == "" {
		return e.loms.stop, nil
	}
	// Its relay looks at the outbox when it starts and stops and otherwise
	// once an hour: with both polling every 100 ms, the two would share
	// the publishing of every run's events under the relay's lock, and the
	// measured LOMS's CPU and outbox figures would no longer be its own.
	// The measured LOMS's relay publishes the baseline's events as its own.
	e.baseline, err = e.startLOMS(ctx, e.cfg.baselineBin, "loms-baseline.log", brokers, "LOMS_OUTBOX_POLL_INTERVAL=1h")
	if err != nil {
		e.loms.stop()
		return nil, fmt.Errorf("baseline: %w", err)
	}
	return func() {
		e.baseline.stop()
		e.loms.stop()
	}, nil
}

// startLOMS runs `minizon loms` from bin as its own process, as deployed,
// logging to logName in the output directory, with a payment window longer
// than the run; vars are more of its environment.
func (e *env) startLOMS(ctx context.Context, bin, logName, brokers string, vars ...string) (*lomsProcess, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.Create(filepath.Join(e.cfg.out, logName))
	if err != nil {
		return nil, err
	}
	lomsURL := e.dbURL
	if e.cfg.pool > 0 {
		sep := "?"
		if strings.Contains(lomsURL, "?") {
			sep = "&"
		}
		lomsURL += sep + "pool_max_conns=" + strconv.Itoa(e.cfg.pool)
	}
	cmd := exec.Command(bin, "loms")
	cmd.Env = append(append(envconf.Foreign(os.Environ()),
		"DATABASE_URL="+lomsURL, "KAFKA_BROKERS="+brokers, "MINIZON_ADDR="+addr,
		"LOMS_PAYMENT_TIMEOUT=1h", "MINIZON_SEED=false"), vars...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start LOMS %s: %w", bin, err)
	}
	p := &lomsProcess{cmd: cmd, log: logFile, addr: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := command(ctx, e.cfg.minizon, "healthcheck", addr).Run(); err == nil {
			return p, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("LOMS did not become healthy in 30s; see %s", logFile.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *lomsProcess) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
	_ = p.log.Close()
}

// seed gives every sku 1..skus, and the flash sale's hot sku after them,
// stock in warehouses 1 and 2, far more than a run can reserve, so that no
// order fails for want of stock.
func (e *env) seed(ctx context.Context) error {
	_, err := e.pool.Exec(ctx, `INSERT INTO stocks (sku, warehouse_id, total)
		SELECT s, w, 1000000000000 FROM generate_series(1, $1::bigint) s, generate_series(1, 2) w
		ON CONFLICT DO NOTHING`, e.cfg.hotSKU())
	if err != nil {
		return fmt.Errorf("seed stocks: %w", err)
	}
	if _, err = e.pool.Exec(ctx, "VACUUM ANALYZE stocks"); err != nil {
		return fmt.Errorf("analyze stocks: %w", err)
	}
	return nil
}

func (e *env) settings(ctx context.Context) (string, error) {
	var version, fsync, syncCommit, sharedBuffers string
	err := e.pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit'), current_setting('shared_buffers')`).Scan(&version, &fsync, &syncCommit, &sharedBuffers)
	if err != nil {
		return "", fmt.Errorf("read Postgres settings: %w", err)
	}
	return fmt.Sprintf("PostgreSQL %s, fsync=%s, synchronous_commit=%s, shared_buffers=%s", version, fsync, syncCommit, sharedBuffers), nil
}

// kafkaRecords counts the records in the order-events topic.
func (e *env) kafkaRecords(ctx context.Context) (int64, error) {
	offsets, err := e.kafka.ListEndOffsets(ctx, outbox.Topic)
	if err != nil {
		return 0, fmt.Errorf("kafka end offsets: %w", err)
	}
	var n int64
	offsets.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			n += o.Offset
		}
	})
	return n, nil
}

// rss reads a memory figure of LOMS's process in MiB (VmRSS now, VmHWM the
// peak since it started).
func (e *env) rss(field string) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.loms.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc status", field)
}

func (e *env) peakRSS() (float64, error) { return e.rss("VmHWM") }

// profiles takes a CPU profile of LOMS under 16-client gRPC create-order
// and stocks load into the output directory.
func (e *env) profiles(ctx context.Context) error {
	for _, scenario := range []string{"create-order", "stocks"} {
		file := filepath.Join(e.cfg.out, "cpu-"+scenario+".pprof")
		errc := make(chan error, 1)
		go func() {
			// Start after the warm-up, end before the run does.
			time.Sleep(e.cfg.warmup)
			secs := max(1, int(e.cfg.duration.Seconds())-1)
			errc <- download(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", e.debug, secs), file)
		}()
		run := loadRun{protocol: "grpc", scenario: scenario, clients: 16, extra: []string{"-settle", loadgen.SettleNone}}
		if _, err := e.load(ctx, run); err != nil {
			return err
		}
		if err := <-errc; err != nil {
			// An older build has no MINIZON_DEBUG_ADDR.
			log.Printf("no CPU profile of %s: %v", scenario, err)
			continue
		}
		fmt.Printf("CPU profile of LOMS under %s: go tool pprof -top %s\n", scenario, file)
	}
	return nil
}

func download(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", res.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
