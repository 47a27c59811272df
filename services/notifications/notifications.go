package notifications

import (
	"context"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/internal/kafkaconsumer"
	"github.com/minizon/minizon/internal/pgpool"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/services/notifications/sender"
	"github.com/minizon/minizon/services/notifications/store"
)

// Kafka names Notifications depends on.
const (
	// Topic is where LOMS publishes order events.
	Topic = "loms.order-events"
	// DeadLetterTopic receives the records that cannot be decoded.
	DeadLetterTopic = "loms.order-events.dlq"
	// Group is Notifications' consumer group: replicas share the
	// partitions.
	Group = "notifications"
)

// App is Notifications connected to its database and broker.
type App struct {
	pool     *pgxpool.Pool
	store    *store.Store
	consumer *kafkaconsumer.Consumer
}

// Open migrates the database and connects to it and to Kafka; consuming
// starts with Workers.
func Open(ctx context.Context, cfg Config, deps platform.Deps) (*App, error) {
	log, tel := deps.Log, deps.Tel
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := pgpool.Open(ctx, "notifications", cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	st := store.New(pool)
	var send Sender = sender.NewLog(log)
	if cfg.WebhookURL != "" {
		send = sender.NewWebhook(sender.WebhookConfig{
			URL: cfg.WebhookURL, Timeout: cfg.WebhookTimeout, Attempts: cfg.WebhookAttempts,
		}, nil)
	}
	h, err := newHandler(st, send, tel)
	if err != nil {
		pool.Close()
		return nil, err
	}
	c, err := kafkaconsumer.New(kafkaconsumer.Config{
		Brokers:         cfg.KafkaBrokers,
		Group:           Group,
		Topic:           Topic,
		Handler:         h.handle,
		DeadLetterTopic: DeadLetterTopic,
		RetryBackoff:    100 * time.Millisecond,
		RetryBackoffMax: cfg.RetryBackoffMax,
		// A webhook delivery tries WebhookAttempts times, each bounded,
		// with waits of up to 5s between them.
		HandleTimeout: (cfg.WebhookTimeout+5*time.Second)*time.Duration(cfg.WebhookAttempts) + 10*time.Second,
		// A revoked partition's record in hand finishes (or its
		// transaction rolls back) within this; the README promises 10s.
		HandoverGrace:  10 * time.Second,
		SessionTimeout: cfg.SessionTimeout,
	}, log, tel.Metrics)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &App{pool: pool, store: st, consumer: c}, nil
}

// Store is the record of notifications, for reading back.
func (a *App) Store() *store.Store { return a.store }

// Handlers implements platform.App: Notifications has no RPC API.
func (a *App) Handlers([]connect.HandlerOption) []platform.Handler { return nil }

// Workers implements platform.App: the consumer loop, beside the health
// server.
func (a *App) Workers() []func(context.Context) error {
	return []func(context.Context) error{a.consumer.Run}
}

// Close leaves the consumer group and closes the connections. Call it
// after the workers stopped.
func (a *App) Close(context.Context) {
	a.consumer.Close()
	a.pool.Close()
}

// Run runs Notifications alone: `minizon notifications`. It has no RPC
// API; its port serves health checks and /metrics.
func Run(ctx context.Context, pcfg platform.Config, cfg Config, deps platform.Deps) error {
	app, err := Open(ctx, cfg, deps)
	if err != nil {
		return err
	}
	return platform.RunApp(ctx, pcfg, deps, "notifications", app)
}
