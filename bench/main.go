// Command bench measures LOMS against its own yardsticks on this machine,
// in one run: pgbench running LOMS's CreateOrder transaction and its stocks
// select on the same durable Postgres, and a no-op RPC for the transport's
// ceiling. It writes one table of the ratios; see bench/README.md.
//
//	go run ./bench [-d 10s] [-clients 16,64] [-protocols grpc,connect,grpc-web]
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/loadgen"
	"github.com/minizon/minizon/internal/pgcluster"
	"github.com/minizon/minizon/services/loms/outbox"
)

type config struct {
	minizon, lomsBin string
	out              string
	duration, warmup time.Duration
	clients          []int
	protocols        []string
	skus, rounds     int
	// pool is LOMS's pool_max_conns; 0 leaves LOMS's default.
	pool    int
	profile bool
}

func main() {
	var cfg config
	var clients, protocols string
	flag.StringVar(&cfg.minizon, "minizon", "", "minizon binary that drives the load (default: build ./cmd/minizon)")
	flag.StringVar(&cfg.lomsBin, "loms-bin", "", "minizon binary whose LOMS is measured (default -minizon), to measure an older build in the same way")
	flag.StringVar(&cfg.out, "out", "bench/out", "directory for the results, logs, pgbench logs and profiles")
	flag.DurationVar(&cfg.duration, "d", 5*time.Second, "measured duration of each run")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of every measurement; the medians are reported")
	flag.StringVar(&clients, "clients", "16,64", "client counts to measure at")
	flag.StringVar(&protocols, "protocols", "grpc,connect,grpc-web", "protocols to measure")
	flag.IntVar(&cfg.skus, "skus", 10000, "skus in stock (two warehouses each)")
	flag.IntVar(&cfg.pool, "loms-pool", 0, "LOMS's connection pool size (pool_max_conns; default: LOMS's own)")
	flag.BoolVar(&cfg.profile, "profile", true, "after the table, take CPU profiles of LOMS under create-order and stocks load")
	flag.Parse()
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			log.Fatalf("bench: -clients: %q is not a client count", c)
		}
		cfg.clients = append(cfg.clients, n)
	}
	cfg.protocols = strings.Split(protocols, ",")
	if cfg.rounds < 1 {
		log.Fatal("bench: -rounds must be at least 1")
	}
	if cfg.skus < 30 {
		log.Fatal("bench: -skus must be at least 30: orders take 3 skus from thirds of the range")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

// env is everything a run needs: the database, the broker and LOMS.
type env struct {
	cfg      config
	pgbench  string
	dbURL    string
	pool     *pgxpool.Pool
	kafka    *kadm.Client
	lomsAddr string
	debug    string
	loms     *exec.Cmd
	lomsLog  *os.File
	// postmaster is the cluster's main process, whose children are its
	// backends.
	postmaster int
}

func run(ctx context.Context, cfg config) error {
	out, err := filepath.Abs(cfg.out)
	if err != nil {
		return err
	}
	cfg.out = out
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if cfg.minizon == "" {
		cfg.minizon = filepath.Join(out, "minizon")
		log.Printf("building %s", cfg.minizon)
		if err := command(ctx, "go", "build", "-o", cfg.minizon, "./cmd/minizon").Run(); err != nil {
			return fmt.Errorf("build minizon: %w", err)
		}
	}
	if cfg.lomsBin == "" {
		cfg.lomsBin = cfg.minizon
	}
	if _, err := os.Stat(filepath.Join("bench", "pgbench", "create_order.sql")); err != nil {
		return errors.New("run the harness from the repository's root (go run ./bench): it reads bench/pgbench/")
	}
	e := &env{cfg: cfg}

	// Durable: fsync and synchronous_commit stay on, as in production. The
	// cluster lives in a fresh folder of the system's temporary directory,
	// which the postgres user can reach even when the checkout is in root's
	// private home.
	pgDir, err := os.MkdirTemp("", "minizon-bench-pg-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(pgDir)
	if err := os.Chmod(pgDir, 0o755); err != nil {
		return err
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: pgDir})
	if err != nil {
		return err
	}
	defer cluster.Stop()
	if err := cluster.CreateDatabase(ctx, "loms", ""); err != nil {
		return err
	}
	e.dbURL = cluster.URL("loms")
	e.pgbench = cluster.Bin("pgbench")
	if _, err := os.Stat(e.pgbench); err != nil {
		return fmt.Errorf("pgbench is not beside the Postgres server: %w", err)
	}
	pidFile, err := os.ReadFile(filepath.Join(cluster.DataDir(), "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("postmaster pid: %w", err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	if e.postmaster, err = strconv.Atoi(strings.TrimSpace(first)); err != nil {
		return fmt.Errorf("postmaster pid: %w", err)
	}

	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer broker.Close()
	kc, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer kc.Close()
	e.kafka = kadm.NewClient(kc)

	if err := e.startLOMS(ctx, strings.Join(broker.ListenAddrs(), ",")); err != nil {
		return err
	}
	defer e.stopLOMS()
	if e.pool, err = pgxpool.New(ctx, e.dbURL); err != nil {
		return err
	}
	defer e.pool.Close()
	if err := e.seed(ctx); err != nil {
		return err
	}
	settings, err := e.settings(ctx)
	if err != nil {
		return err
	}
	log.Printf("Postgres: %s", settings)

	var rows []row
	for _, c := range cfg.clients {
		r, err := e.measure(ctx, c)
		if err != nil {
			return err
		}
		rows = append(rows, r...)
	}
	peak, err := e.peakRSS()
	if err != nil {
		return err
	}
	report := renderReport(cfg, settings, rows, peak)
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(report), 0o644); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "results.json"), js, 0o644); err != nil {
		return err
	}
	fmt.Print(report)
	if cfg.profile {
		return e.profiles(ctx)
	}
	return nil
}

func command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stderr = os.Stderr
	return cmd
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startLOMS runs `minizon loms` as its own process, as deployed, with its
// profiler on a debug port and a payment window longer than the run.
func (e *env) startLOMS(ctx context.Context, brokers string) error {
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	debug, err := freeAddr()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(e.cfg.out, "loms.log"))
	if err != nil {
		return err
	}
	lomsURL := e.dbURL
	if e.cfg.pool > 0 {
		sep := "?"
		if strings.Contains(lomsURL, "?") {
			sep = "&"
		}
		lomsURL += sep + "pool_max_conns=" + strconv.Itoa(e.cfg.pool)
	}
	cmd := exec.Command(e.cfg.lomsBin, "loms")
	cmd.Env = append(envconf.Foreign(os.Environ()),
		"DATABASE_URL="+lomsURL, "KAFKA_BROKERS="+brokers, "MINIZON_ADDR="+addr, "MINIZON_DEBUG_ADDR="+debug,
		"LOMS_PAYMENT_TIMEOUT=1h", "MINIZON_SEED=false")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start LOMS: %w", err)
	}
	e.loms, e.lomsLog, e.lomsAddr, e.debug = cmd, logFile, "http://"+addr, debug
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := command(ctx, e.cfg.minizon, "healthcheck", addr).Run(); err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			e.stopLOMS()
			return fmt.Errorf("LOMS did not become healthy in 30s; see %s", logFile.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (e *env) stopLOMS() {
	_ = e.loms.Process.Signal(syscall.SIGTERM)
	_ = e.loms.Wait()
	_ = e.lomsLog.Close()
}

// seed gives every sku 1..skus stock in warehouses 1 and 2, far more than a
// run can reserve, so that no order fails for want of stock.
func (e *env) seed(ctx context.Context) error {
	_, err := e.pool.Exec(ctx, `INSERT INTO stocks (sku, warehouse_id, total)
		SELECT s, w, 1000000000000 FROM generate_series(1, $1::bigint) s, generate_series(1, 2) w
		ON CONFLICT DO NOTHING`, e.cfg.skus)
	if err != nil {
		return fmt.Errorf("seed stocks: %w", err)
	}
	_, err = e.pool.Exec(ctx, "VACUUM ANALYZE stocks")
	return err
}

func (e *env) settings(ctx context.Context) (string, error) {
	var version, fsync, syncCommit, sharedBuffers string
	err := e.pool.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('fsync'),
		current_setting('synchronous_commit'), current_setting('shared_buffers')`).Scan(&version, &fsync, &syncCommit, &sharedBuffers)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("PostgreSQL %s, fsync=%s, synchronous_commit=%s, shared_buffers=%s", version, fsync, syncCommit, sharedBuffers), nil
}

// row is one line of the tables: one client count and protocol.
type row struct {
	Clients  int    `json:"clients"`
	Protocol string `json:"protocol"`
	// PgbenchCreate and PgbenchSelect are shared by the protocols of one
	// client count: they were measured once.
	PgbenchCreate result `json:"pgbench_create_order"`
	PgbenchSelect result `json:"pgbench_stocks_select"`
	CreateOrder   result `json:"create_order"`
	Stocks        result `json:"stocks"`
	Noop          result `json:"noop"`
	// Outbox is measured in the create-order run.
	Outbox outboxResult `json:"outbox"`
	// LOMSMaxRSSMiB is the largest resident set seen during create-order.
	LOMSMaxRSSMiB float64 `json:"loms_max_rss_mib"`
	Ratios        ratios  `json:"ratios"`
	// Rounds are the rounds a summary row was made of.
	Rounds []row `json:"rounds,omitempty"`
}

type result struct {
	RPS    float64 `json:"rps"`
	P99    float64 `json:"p99_ms"`
	Errors int64   `json:"errors"`
	// CPU is what each part used during the run; Requests is how many
	// requests (or transactions) it was spent on, warm-up included.
	CPU      cpuShare `json:"cpu"`
	Requests float64  `json:"requests"`
}

// cpuPerRequest is CPU per request in microseconds, by part.
func (r result) cpuPerRequest() string { return r.CPU.perRequest(r.Requests) }

type outboxResult struct {
	// MaxOldestUnsentSeconds is the largest age of the oldest unsent event
	// seen during the run, sampled every 100 ms.
	MaxOldestUnsentSeconds float64 `json:"max_oldest_unsent_seconds"`
	// DrainedSeconds is the time from the end of the run until every event
	// of the run was in Kafka.
	DrainedSeconds float64 `json:"drained_seconds"`
	// Events counts the run's events found in Kafka, EventsWanted those
	// its orders made (two each).
	Events       int64 `json:"events"`
	EventsWanted int64 `json:"events_wanted"`
}

// measure runs every measurement at one client count, -rounds times over:
// the machine's speed drifts (shared cores, CPU steal), so each round's
// service figures are paired with that round's pgbench figures, and the
// medians are reported.
func (e *env) measure(ctx context.Context, clients int) ([]row, error) {
	perProtocol := map[string][]row{}
	for round := 1; round <= e.cfg.rounds; round++ {
		create, err := e.runPgbench(ctx, "create_order", clients)
		if err != nil {
			return nil, err
		}
		sel, err := e.runPgbench(ctx, "stocks", clients)
		if err != nil {
			return nil, err
		}
		for _, p := range e.cfg.protocols {
			r := row{Clients: clients, Protocol: p, PgbenchCreate: create, PgbenchSelect: sel}
			if r.CreateOrder, r.Outbox, r.LOMSMaxRSSMiB, err = e.createOrder(ctx, p, clients); err != nil {
				return nil, err
			}
			if r.Stocks, err = e.load(ctx, p, "stocks", clients, nil); err != nil {
				return nil, err
			}
			if r.Noop, err = e.load(ctx, p, "noop", clients, nil); err != nil {
				return nil, err
			}
			r.Ratios = ratios{
				CreateOrderVsPgbench: ratio(r.CreateOrder.RPS, create.RPS),
				StocksVsNoop:         ratio(r.Stocks.RPS, r.Noop.RPS),
				StocksVsSelect:       ratio(r.Stocks.RPS, sel.RPS),
			}
			log.Printf("round %d, %d clients, %s: CreateOrder %.0f/s (pgbench %.0f), Stocks %.0f/s (pgbench %.0f), noop %.0f/s",
				round, clients, p, r.CreateOrder.RPS, create.RPS, r.Stocks.RPS, sel.RPS, r.Noop.RPS)
			perProtocol[p] = append(perProtocol[p], r)
		}
	}
	var rows []row
	for _, p := range e.cfg.protocols {
		rows = append(rows, medianRow(perProtocol[p]))
	}
	return rows, nil
}

// ratios are the service's figures over their yardsticks, in one round.
type ratios struct {
	CreateOrderVsPgbench float64 `json:"create_order_vs_pgbench"`
	StocksVsNoop         float64 `json:"stocks_vs_noop"`
	StocksVsSelect       float64 `json:"stocks_vs_pgbench_select"`
}

// medianRow summarizes rounds: the median ratios; for each measurement the
// round with the median rate (its p99 and CPU with it) and the errors of
// all; the outbox's and memory's worst.
func medianRow(rounds []row) row {
	pick := func(get func(row) result) result {
		rs := make([]result, len(rounds))
		var errs int64
		for i, r := range rounds {
			rs[i] = get(r)
			errs += rs[i].Errors
		}
		slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.RPS, b.RPS) })
		// The lower middle of an even count: no rounding in the
		// service's favour.
		m := rs[(len(rs)-1)/2]
		m.Errors = errs
		return m
	}
	median := func(get func(row) float64) float64 {
		v := make([]float64, len(rounds))
		for i, r := range rounds {
			v[i] = get(r)
		}
		slices.Sort(v)
		return v[(len(v)-1)/2]
	}
	m := row{
		Clients: rounds[0].Clients, Protocol: rounds[0].Protocol,
		PgbenchCreate: pick(func(r row) result { return r.PgbenchCreate }),
		PgbenchSelect: pick(func(r row) result { return r.PgbenchSelect }),
		CreateOrder:   pick(func(r row) result { return r.CreateOrder }),
		Stocks:        pick(func(r row) result { return r.Stocks }),
		Noop:          pick(func(r row) result { return r.Noop }),
		Ratios: ratios{
			CreateOrderVsPgbench: median(func(r row) float64 { return r.Ratios.CreateOrderVsPgbench }),
			StocksVsNoop:         median(func(r row) float64 { return r.Ratios.StocksVsNoop }),
			StocksVsSelect:       median(func(r row) float64 { return r.Ratios.StocksVsSelect }),
		},
		Rounds: rounds,
	}
	for _, r := range rounds {
		m.Outbox.MaxOldestUnsentSeconds = max(m.Outbox.MaxOldestUnsentSeconds, r.Outbox.MaxOldestUnsentSeconds)
		m.Outbox.DrainedSeconds = max(m.Outbox.DrainedSeconds, r.Outbox.DrainedSeconds)
		m.Outbox.Events += r.Outbox.Events
		m.Outbox.EventsWanted += r.Outbox.EventsWanted
		m.LOMSMaxRSSMiB = max(m.LOMSMaxRSSMiB, r.LOMSMaxRSSMiB)
	}
	return m
}

var tpsLine = regexp.MustCompile(`tps = ([0-9.]+) \(without initial connection time\)`)

// runPgbench runs bench/pgbench/<script>.sql, after a warm-up, and reads
// its rate and its p99 from the per-transaction log.
func (e *env) runPgbench(ctx context.Context, script string, clients int) (result, error) {
	file := filepath.Join("bench", "pgbench", script+".sql")
	// pgbench runs whole seconds.
	secs := func(d time.Duration) int { return max(1, int(d.Seconds())) }
	args := func(d time.Duration) []string {
		return []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", "2",
			"-T", strconv.Itoa(secs(d)), "-f", file, "-D", "nskus=" + strconv.Itoa(e.cfg.skus)}
	}
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
	p99, err := pgbenchP99(logDir)
	if err != nil {
		return result{}, err
	}
	log.Printf("pgbench %s, %d clients: %.0f tps, p99 %.2f ms", script, clients, tps, p99)
	return result{RPS: tps, P99: p99, CPU: cpu, Requests: tps * float64(secs(e.cfg.duration))}, nil
}

// pgbenchP99 reads pgbench's per-transaction logs ("client tx latency_us
// script epoch epoch_us" per line).
func pgbenchP99(dir string) (float64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx*"))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no pgbench log in %s", dir)
	}
	h := hdrhistogram.New(1, int64(10*time.Minute/time.Microsecond), 3)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return 0, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("pgbench log %s: %q", f, line)
			}
			_ = h.RecordValue(us)
		}
	}
	return float64(h.ValueAtQuantile(99)) / 1000, nil
}

// load runs `minizon bench` against LOMS; extra are more flags.
func (e *env) load(ctx context.Context, protocol, scenario string, clients int, extra []string) (result, error) {
	args := append([]string{"bench", "-addr", e.lomsAddr, "-protocol", protocol, "-scenario", scenario,
		"-c", strconv.Itoa(clients), "-d", e.cfg.duration.String(), "-warmup", e.cfg.warmup.String(),
		"-skus", fmt.Sprintf("1-%d", e.cfg.skus), "-json"}, extra...)
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
	return result{RPS: rps, P99: primary.Latency.P99, Errors: sum.Errors(), CPU: cpu, Requests: requests}, nil
}

// createOrder runs create-order (orders left awaiting payment, like the
// pgbench script) while sampling the outbox's oldest unsent event and LOMS's
// memory, then waits for every event of the run to reach Kafka.
func (e *env) createOrder(ctx context.Context, protocol string, clients int) (result, outboxResult, float64, error) {
	var ob outboxResult
	before, err := e.kafkaRecords(ctx)
	if err != nil {
		return result{}, ob, 0, err
	}
	// Orders of this run are those with a larger id (ids only grow).
	var lastBefore int64
	if err := e.pool.QueryRow(ctx, "SELECT COALESCE(max(id), 0) FROM orders").Scan(&lastBefore); err != nil {
		return result{}, ob, 0, err
	}
	sctx, stop := context.WithCancel(ctx)
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
				FROM outbox WHERE sent_at IS NULL`).Scan(&age); err == nil {
				oldest = max(oldest, age)
			}
			if r, err := e.rss("VmRSS"); err == nil {
				rss = max(rss, r)
			}
		}
	}()
	res, err := e.load(ctx, protocol, "create-order", clients, []string{"-settle", loadgen.SettleNone})
	end := time.Now()
	stop()
	s := <-samples
	if err != nil {
		return result{}, ob, 0, err
	}
	ob.MaxOldestUnsentSeconds = s[0]
	for {
		// Every order, warm-up included, made two events: created, then
		// awaiting payment (or failed). Orders are counted again each time:
		// a call the load generator gave up on at the end may still commit.
		var orders int64
		if err := e.pool.QueryRow(ctx, "SELECT count(*) FROM orders WHERE id > $1", lastBefore).Scan(&orders); err != nil {
			return result{}, ob, 0, err
		}
		ob.EventsWanted = 2 * orders
		n, err := e.kafkaRecords(ctx)
		if err != nil {
			return result{}, ob, 0, err
		}
		ob.Events = n - before
		if ob.Events >= ob.EventsWanted {
			ob.DrainedSeconds = time.Since(end).Seconds()
			break
		}
		if time.Since(end) > time.Minute {
			return result{}, ob, 0, fmt.Errorf("only %d of %d events reached Kafka a minute after the run", ob.Events, ob.EventsWanted)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return res, ob, s[1], nil
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
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", e.loms.Process.Pid))
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
		if _, err := e.load(ctx, "grpc", scenario, 16, []string{"-settle", loadgen.SettleNone}); err != nil {
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
