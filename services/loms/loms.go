// Package loms wires LOMS together: configuration, the Postgres pool, the
// RPC handlers and the workers beside them (the outbox relay, the
// payment-timeout sweeper and the order watchers' listener).
package loms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/pgpool"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/seed"
	"github.com/minizon/minizon/services/loms/order"
	"github.com/minizon/minizon/services/loms/outbox"
	"github.com/minizon/minizon/services/loms/store"
	"github.com/minizon/minizon/services/loms/sweeper"
	"github.com/minizon/minizon/services/loms/watch"
	"github.com/minizon/minizon/services/loms/wire"
)

// Config is LOMS's configuration.
type Config struct {
	// DatabaseURL is LOMS's own database (DATABASE_URL). Several hosts with
	// target_session_attrs=read-write follow a primary that fails over.
	DatabaseURL string
	// ReadURL, if set, is a standby of it that serves Stocks and
	// ListOrders (LOMS_READ_URL); see store.Store.ReadFrom.
	ReadURL string
	// KafkaBrokers are the seed brokers (KAFKA_BROKERS, comma-separated).
	KafkaBrokers []string
	// PaymentTimeout is the payment window (LOMS_PAYMENT_TIMEOUT).
	PaymentTimeout time.Duration
	// SweepInterval is how often expired orders are looked for
	// (LOMS_SWEEP_INTERVAL; default: a tenth of the payment timeout,
	// between 50ms and 1s).
	SweepInterval time.Duration
	// SeedDemo adds the demo catalog's stock on start, keeping existing
	// rows (MINIZON_SEED; default false, true in `minizon dev`).
	SeedDemo bool
	// BatchMax bounds how many concurrent CreateOrders are reserved, or
	// OrderPayed and CancelOrder calls applied, in one transaction
	// (LOMS_BATCH_MAX; 1 turns batching off).
	BatchMax int
	// BatchFlights bounds how many batches are in flight at once
	// (LOMS_BATCH_FLIGHTS).
	BatchFlights int
	// Watch bounds and tunes WatchOrder (LOMS_MAX_WATCHERS,
	// LOMS_WATCH_KEEPALIVE).
	Watch watch.Config
	// Outbox tunes the relay (LOMS_OUTBOX_POLL_INTERVAL, LOMS_OUTBOX_BATCH,
	// KAFKA_PRODUCE_TIMEOUT, LOMS_EVENTS_PARTITIONS).
	Outbox outbox.Config
}

// DefaultPaymentTimeout is the payment window unless configured.
const DefaultPaymentTimeout = 10 * time.Minute

// DefaultBatchMax bounds a batch unless configured.
const DefaultBatchMax = 128

// DefaultBatchFlights bounds the batches in flight unless configured.
const DefaultBatchFlights = 1

// ReadConfig reads LOMS's variables; errors are collected in env.
func ReadConfig(env *envconf.Reader) Config {
	cfg := Config{
		DatabaseURL:    env.String("DATABASE_URL", ""),
		ReadURL:        env.String("LOMS_READ_URL", ""),
		KafkaBrokers:   env.List("KAFKA_BROKERS", nil),
		PaymentTimeout: env.Duration("LOMS_PAYMENT_TIMEOUT", DefaultPaymentTimeout),
		SeedDemo:       env.Bool("MINIZON_SEED", false),
		BatchMax:       int(env.Int("LOMS_BATCH_MAX", DefaultBatchMax, 1, 1000)),
		BatchFlights:   int(env.Int("LOMS_BATCH_FLIGHTS", DefaultBatchFlights, 1, 64)),
		Watch: watch.Config{
			MaxWatchers: int(env.Int("LOMS_MAX_WATCHERS", watch.DefaultMaxWatchers, 1, 1_000_000)),
			KeepAlive:   env.Duration("LOMS_WATCH_KEEPALIVE", watch.DefaultKeepAlive),
		},
		Outbox: outbox.Config{
			PollInterval:   env.Duration("LOMS_OUTBOX_POLL_INTERVAL", 100*time.Millisecond),
			BatchSize:      int(env.Int("LOMS_OUTBOX_BATCH", 500, 1, 10000)),
			ProduceTimeout: env.Duration("KAFKA_PRODUCE_TIMEOUT", 10*time.Second),
			Partitions:     int32(env.Int("LOMS_EVENTS_PARTITIONS", 3, 1, 1000)),
		},
	}
	cfg.SweepInterval = env.Duration("LOMS_SWEEP_INTERVAL", defaultSweepInterval(cfg.PaymentTimeout))
	return cfg
}

func defaultSweepInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/10, 50*time.Millisecond), time.Second)
}

// Validate reports missing or inconsistent settings.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	if len(c.KafkaBrokers) == 0 {
		errs = append(errs, errors.New("KAFKA_BROKERS is required"))
	}
	if c.PaymentTimeout <= 0 {
		errs = append(errs, errors.New("LOMS_PAYMENT_TIMEOUT must be positive"))
	}
	if c.SweepInterval <= 0 || c.Outbox.PollInterval <= 0 || c.Outbox.ProduceTimeout <= 0 || c.Watch.KeepAlive < 0 {
		errs = append(errs, errors.New("LOMS_SWEEP_INTERVAL, LOMS_OUTBOX_POLL_INTERVAL, KAFKA_PRODUCE_TIMEOUT and LOMS_WATCH_KEEPALIVE must be positive"))
	}
	return errors.Join(errs...)
}

// App is LOMS connected to its database and broker.
type App struct {
	cfg    Config
	log    *slog.Logger
	sweep  *sweeper.Sweeper
	pool   *pgxpool.Pool
	reads  *pgxpool.Pool // nil without LOMS_READ_URL
	kafka  *kgo.Client
	store  *store.Store
	orders *order.Service
	relay  *outbox.Relay
	// watchers hold the WatchOrder streams.
	watchers *watch.Hub
}

// Open migrates the database, connects to it and, if configured, seeds the
// demo stock. The broker may be down: events wait in the outbox until it is
// reachable. The outbox's backlog is reported on tel's registry.
func Open(ctx context.Context, cfg Config, deps platform.Deps) (*App, error) {
	log, tel := deps.Log, deps.Tel
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// A Config built in code may leave the batching unset: the defaults.
	cfg.BatchMax = cmp.Or(cfg.BatchMax, DefaultBatchMax)
	cfg.BatchFlights = cmp.Or(cfg.BatchFlights, DefaultBatchFlights)
	pool, err := pgpool.Open(ctx, "loms", cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	kafka, err := kgo.NewClient(
		kgo.SeedBrokers(cfg.KafkaBrokers...),
		kgo.RecordDeliveryTimeout(cfg.Outbox.ProduceTimeout),
	)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	st := store.New(pool, wire.EncodeEvent, time.Now)
	var reads *pgxpool.Pool
	if cfg.ReadURL != "" {
		// A standby is read-only: no migrations; the primary's reach it.
		if reads, err = pgpool.OpenReplica(ctx, "loms", cfg.ReadURL); err != nil {
			pool.Close()
			kafka.Close()
			return nil, err
		}
		st.ReadFrom(reads)
	}
	closeAll := func() {
		pool.Close()
		kafka.Close()
		if reads != nil {
			reads.Close()
		}
	}
	if cfg.SeedDemo {
		n, err := st.SeedStocks(ctx, demoStocks())
		if err != nil {
			closeAll()
			return nil, err
		}
		log.Info("seeded demo stock", "skus", seed.CatalogSize, "new_rows", n)
	}
	batcher := store.NewBatcher(st, cfg.BatchMax, cfg.BatchFlights)
	watchers := watch.NewHub(st, st, cfg.Watch, log)
	var errs []error
	for _, c := range append([]prometheus.Collector{outbox.NewMetrics(st), batcher.Metrics()}, watchers.Metrics()...) {
		errs = append(errs, tel.Metrics.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		closeAll()
		return nil, fmt.Errorf("register LOMS metrics: %w", err)
	}
	orders := order.NewService(batcher, cfg.PaymentTimeout, time.Now)
	return &App{
		cfg:      cfg,
		log:      log,
		sweep:    sweeper.New(orders, cfg.SweepInterval, log),
		pool:     pool,
		reads:    reads,
		kafka:    kafka,
		store:    st,
		orders:   orders,
		relay:    outbox.NewRelay(st, kafka, cfg.Outbox, log),
		watchers: watchers,
	}, nil
}

// Handlers implements platform.App: LomsService, whose WatchOrder streams
// live long.
func (a *App) Handlers(opts []connect.HandlerOption) []platform.Handler {
	path, h := lomsv1connect.NewLomsServiceHandler(NewServer(a.orders, a.watchers, a.log), opts...)
	return []platform.Handler{{Service: lomsv1connect.LomsServiceName, Path: path, HTTP: h,
		Streams: []string{lomsv1connect.LomsServiceWatchOrderProcedure}}}
}

// Workers are the background loops to run beside the server: the outbox
// relay, the payment-timeout sweeper and the listener that tells order
// watchers of changes.
func (a *App) Workers() []func(context.Context) error {
	return []func(context.Context) error{a.relay.Run, a.sweep.Run, a.watchers.Run}
}

// Seed adds stock rows that do not exist yet.
func (a *App) Seed(ctx context.Context, stocks []order.Stock) (int64, error) {
	return a.store.SeedStocks(ctx, stocks)
}

// demoStocks is the stock of the deterministic demo catalog that every
// service of `minizon dev` shares.
func demoStocks() []order.Stock {
	stocks := seed.Stocks(seed.SKUs(seed.CatalogSize))
	out := make([]order.Stock, len(stocks))
	for i, s := range stocks {
		out[i] = order.Stock{SKU: s.SKU, Warehouse: s.Warehouse, Total: s.Units}
	}
	return out
}

// Close flushes the producer and closes the connections. Call it after the
// workers stopped.
func (a *App) Close(ctx context.Context) {
	if err := a.relay.Flush(ctx); err != nil {
		a.log.Warn("loms: flush producer", "error", err.Error())
	}
	a.kafka.Close()
	a.pool.Close()
	if a.reads != nil {
		a.reads.Close()
	}
}

// Run runs LOMS alone: `minizon loms`.
func Run(ctx context.Context, pcfg platform.Config, cfg Config, deps platform.Deps) error {
	app, err := Open(ctx, cfg, deps)
	if err != nil {
		return err
	}
	return platform.RunApp(ctx, pcfg, deps, "loms", app)
}
