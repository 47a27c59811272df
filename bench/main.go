// Command bench measures LOMS against its own yardsticks on this machine,
// in one run: pgbench running LOMS's CreateOrder transaction (on spread skus
// and, for a flash sale, on one sku) and its stocks select on the same
// durable Postgres, and a no-op RPC for the transport's ceiling. It writes
// one table of the ratios; see bench/README.md.
//
//	go run ./bench [-d 10s] [-clients 16,64] [-protocols grpc,connect,grpc-web] [-baseline-bin /tmp/minizon-old]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/pgcluster"
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
	// baselineBin is a second minizon binary, typically an older build,
	// whose LOMS runs beside the measured one and takes the one-client
	// CreateOrder run after it in every round; "" for none.
	baselineBin string
}

// hotSKU is the flash sale's sku: one past the spread skus, so that no
// other run touches its stock rows.
func (c config) hotSKU() int { return c.skus + 1 }

// flashClients is the client count of the flash-sale and one-client rows:
// the largest measured, where one row lock hurts most.
func (c config) flashClients() int { return slices.Max(c.clients) }

func main() {
	cfg, err := parseFlags()
	if err != nil {
		log.Fatalf("bench: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func parseFlags() (config, error) {
	var cfg config
	var clients, protocols string
	flag.StringVar(&cfg.minizon, "minizon", "", "minizon binary that drives the load (default: build ./cmd/minizon)")
	flag.StringVar(&cfg.lomsBin, "loms-bin", "", "minizon binary whose LOMS is measured (default -minizon), to measure an older build in the same way")
	flag.StringVar(&cfg.out, "out", "bench/out", "directory for the results, logs, pgbench logs and profiles")
	flag.DurationVar(&cfg.duration, "d", 5*time.Second, "measured duration of each run")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured warm-up before each run")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds of every measurement; the medians are reported")
	flag.StringVar(&clients, "clients", "16,64", "client counts to measure at; the flash sale runs at the largest")
	flag.StringVar(&protocols, "protocols", "grpc,connect,grpc-web", "protocols to measure")
	flag.IntVar(&cfg.skus, "skus", 10000, "skus in stock (two warehouses each); the flash sale's is one more")
	flag.IntVar(&cfg.pool, "loms-pool", 0, "LOMS's connection pool size (pool_max_conns; default: LOMS's own)")
	flag.BoolVar(&cfg.profile, "profile", true, "after the table, take CPU profiles of LOMS under create-order and stocks load")
	flag.StringVar(&cfg.baselineBin, "baseline-bin", "", "minizon binary (say, an older build) whose LOMS's one-client CreateOrder latency is measured in the same rounds, to compare with")
	flag.Parse()
	for _, c := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return cfg, fmt.Errorf("-clients: %q is not a client count", c)
		}
		cfg.clients = append(cfg.clients, n)
	}
	cfg.protocols = strings.Split(protocols, ",")
	if cfg.rounds < 1 {
		return cfg, errors.New("-rounds must be at least 1")
	}
	if cfg.skus < 30 {
		return cfg, errors.New("-skus must be at least 30: orders take 3 skus from thirds of the range")
	}
	return cfg, nil
}

// env is everything a run needs: the database, the broker and LOMS.
type env struct {
	cfg     config
	pgbench string
	dbURL   string
	pool    *pgxpool.Pool
	kafka   *kadm.Client
	// loms is the LOMS measured, debug its profiler's address; baseline
	// is -baseline-bin's LOMS, nil without it.
	loms, baseline *lomsProcess
	debug          string
	// postmaster is the cluster's main process, whose children are its
	// backends.
	postmaster int
}

func run(ctx context.Context, cfg config) error {
	cfg, err := prepare(ctx, cfg)
	if err != nil {
		return err
	}
	e := &env{cfg: cfg}
	stopPostgres, err := e.startPostgres(ctx)
	if err != nil {
		return err
	}
	defer stopPostgres()
	brokers, stopKafka, err := e.startKafka()
	if err != nil {
		return err
	}
	defer stopKafka()
	stopLOMS, err := e.startLOMSes(ctx, brokers)
	if err != nil {
		return err
	}
	defer stopLOMS()
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
	stock, err := e.checkStock(ctx)
	if err != nil {
		return err
	}
	if err := e.writeResults(renderReport(cfg, settings, rows, peak, stock), rows); err != nil {
		return err
	}
	// Loudly, after the table that shows it: an oversold run's rates are
	// not worth comparing.
	if stock.oversold() {
		return fmt.Errorf("oversell: %d stock rows reserve more than they hold or than their reservations add up to, e.g. %s",
			stock.Bad, stock.Example)
	}
	if cfg.profile {
		return e.profiles(ctx)
	}
	return nil
}

// prepare makes the output directory and the binaries ready.
func prepare(ctx context.Context, cfg config) (config, error) {
	out, err := filepath.Abs(cfg.out)
	if err != nil {
		return cfg, err
	}
	cfg.out = out
	if err := os.MkdirAll(out, 0o755); err != nil {
		return cfg, err
	}
	if cfg.minizon == "" {
		cfg.minizon = filepath.Join(out, "minizon")
		log.Printf("building %s", cfg.minizon)
		if err := command(ctx, "go", "build", "-o", cfg.minizon, "./cmd/minizon").Run(); err != nil {
			return cfg, fmt.Errorf("build minizon: %w", err)
		}
	}
	if cfg.lomsBin == "" {
		cfg.lomsBin = cfg.minizon
	}
	if _, err := os.Stat(filepath.Join("bench", "pgbench", "create_order.sql")); err != nil {
		return cfg, errors.New("run the harness from the repository's root (go run ./bench): it reads bench/pgbench/")
	}
	return cfg, nil
}

// startPostgres starts a durable cluster: fsync and synchronous_commit stay
// on, as in production. It lives in a fresh folder of the system's
// temporary directory, which the postgres user can reach even when the
// checkout is in root's private home. The returned func stops and removes it.
func (e *env) startPostgres(ctx context.Context) (stop func(), err error) {
	pgDir, err := os.MkdirTemp("", "minizon-bench-pg-")
	if err != nil {
		return nil, err
	}
	cluster, err := e.startCluster(ctx, pgDir)
	if err != nil {
		os.RemoveAll(pgDir)
		return nil, err
	}
	return func() {
		_ = cluster.Stop()
		os.RemoveAll(pgDir)
	}, nil
}

func (e *env) startCluster(ctx context.Context, dir string) (*pgcluster.Cluster, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	if err != nil {
		return nil, err
	}
	if err := e.useCluster(ctx, cluster); err != nil {
		_ = cluster.Stop()
		return nil, err
	}
	return cluster, nil
}

// useCluster creates LOMS's database and finds pgbench and the postmaster.
func (e *env) useCluster(ctx context.Context, cluster *pgcluster.Cluster) error {
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
	return nil
}

// startKafka runs franz-go's in-process broker and returns its addresses.
func (e *env) startKafka() (brokers string, stop func(), err error) {
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return "", nil, fmt.Errorf("kafka: %w", err)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(broker.ListenAddrs()...))
	if err != nil {
		broker.Close()
		return "", nil, fmt.Errorf("kafka client: %w", err)
	}
	e.kafka = kadm.NewClient(kc)
	return strings.Join(broker.ListenAddrs(), ","), func() {
		kc.Close()
		broker.Close()
	}, nil
}

// writeResults writes the table and the rows to the output directory and
// prints the table.
func (e *env) writeResults(report string, rows []row) error {
	if err := os.WriteFile(filepath.Join(e.cfg.out, "results.md"), []byte(report), 0o644); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(e.cfg.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	fmt.Print(report)
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
