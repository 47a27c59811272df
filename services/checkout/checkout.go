// Package checkout wires Checkout together: configuration, the cart
// database, the clients of LOMS and ProductService, and the RPC server.
package checkout

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/pgpool"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/rpcclient"
	"github.com/minizon/minizon/services/checkout/cart"
	"github.com/minizon/minizon/services/checkout/lomsclient"
	"github.com/minizon/minizon/services/checkout/products"
	"github.com/minizon/minizon/services/checkout/store"
)

// Config is Checkout's configuration.
type Config struct {
	// DatabaseURL is Checkout's own database (DATABASE_URL).
	DatabaseURL string
	// LOMS is where LOMS is (LOMS_ADDR, LOMS_PROTOCOL, LOMS_TIMEOUT), and
	// the bearer token Purchase's CreateOrder carries when LOMS asks for
	// one (LOMS_AUTH_TOKEN).
	LOMS rpcclient.Config
	// Product is where ProductService is (PRODUCT_ADDR, PRODUCT_PROTOCOL,
	// PRODUCT_TIMEOUT).
	Product rpcclient.Config
	// Products tunes product lookups (PRODUCT_TOKEN, PRODUCT_CONCURRENCY,
	// PRODUCT_RPS, PRODUCT_CACHE_TTL, PRODUCT_CACHE_SIZE).
	Products products.Config
}

// Defaults used when a variable is unset.
const (
	DefaultLOMSTimeout        = 5 * time.Second
	DefaultProductTimeout     = 2 * time.Second
	DefaultProductConcurrency = 64
	DefaultProductCacheTTL    = 10 * time.Second
	DefaultProductCacheSize   = 100_000
)

// ReadConfig reads Checkout's variables; errors are collected in env. Both
// dependencies are spoken to over gRPC unless configured otherwise, as the
// original ProductService speaks nothing else.
func ReadConfig(env *envconf.Reader) Config {
	lomsCfg := rpcclient.ReadConfig(env, "LOMS", rpcclient.Config{
		Protocol: rpcclient.ProtocolGRPC, Timeout: DefaultLOMSTimeout,
	})
	lomsCfg.AuthToken = env.String("LOMS_AUTH_TOKEN", "")
	return Config{
		DatabaseURL: env.String("DATABASE_URL", ""),
		LOMS:        lomsCfg,
		Product: rpcclient.ReadConfig(env, "PRODUCT", rpcclient.Config{
			Protocol: rpcclient.ProtocolGRPC, Timeout: DefaultProductTimeout,
		}),
		Products: products.Config{
			Token:       env.String("PRODUCT_TOKEN", ""),
			Concurrency: int(env.Int("PRODUCT_CONCURRENCY", DefaultProductConcurrency, 1, 1024)),
			RPS:         int(env.Int("PRODUCT_RPS", 0, 0, 1_000_000)),
			CacheTTL:    env.Duration("PRODUCT_CACHE_TTL", DefaultProductCacheTTL),
			CacheSize:   int(env.Int("PRODUCT_CACHE_SIZE", DefaultProductCacheSize, 1, 100_000_000)),
		},
	}
}

// Validate reports missing or inconsistent settings.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	errs = append(errs, c.LOMS.Validate("LOMS"), c.Product.Validate("PRODUCT"))
	if c.Products.Token == "" {
		errs = append(errs, errors.New("PRODUCT_TOKEN is required"))
	}
	return errors.Join(errs...)
}

// App is Checkout connected to its database and dependencies.
type App struct {
	log      *slog.Logger
	pool     *pgxpool.Pool
	loms     *rpcclient.Dependency
	product  *rpcclient.Dependency
	products *products.Client
	carts    *cart.Service
}

// Open migrates the database and connects to it. LOMS and ProductService
// are not called until a request needs them, so they may start later.
func Open(ctx context.Context, cfg Config, deps platform.Deps) (*App, error) {
	log, tel := deps.Log, deps.Tel
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := pgpool.Open(ctx, "checkout", cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	lomsDep, err := rpcclient.New("LOMS", cfg.LOMS, log, tel)
	if err != nil {
		pool.Close()
		return nil, err
	}
	productDep, err := rpcclient.New("ProductService", cfg.Product, log, tel)
	if err != nil {
		pool.Close()
		return nil, err
	}
	lc := lomsclient.New(lomsDep)
	pc := products.New(productDep, cfg.Products)
	return &App{
		log:      log,
		pool:     pool,
		loms:     lomsDep,
		product:  productDep,
		products: pc,
		carts:    cart.NewService(store.New(pool), lc, lc, pc),
	}, nil
}

// Handlers implements platform.App: CheckoutService.
func (a *App) Handlers(opts []connect.HandlerOption) []platform.Handler {
	path, h := checkoutv1connect.NewCheckoutServiceHandler(NewServer(a.carts, a.log), opts...)
	return []platform.Handler{{Service: checkoutv1connect.CheckoutServiceName, Path: path, HTTP: h}}
}

// Workers implements platform.App: Checkout has none.
func (a *App) Workers() []func(context.Context) error { return nil }

// Close releases connections and the cache.
func (a *App) Close(context.Context) {
	a.products.Close()
	a.loms.Close()
	a.product.Close()
	a.pool.Close()
}

// Run runs Checkout alone: `minizon checkout`.
func Run(ctx context.Context, pcfg platform.Config, cfg Config, deps platform.Deps) error {
	app, err := Open(ctx, cfg, deps)
	if err != nil {
		return err
	}
	return platform.RunApp(ctx, pcfg, deps, "checkout", app)
}
