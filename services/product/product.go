// Package product wires ProductService together: configuration, the
// Postgres pool, the RPC server, the demo catalog and the CSV import of
// `minizon product import`.
package product

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"connectrpc.com/connect"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/minizon/minizon/gen/route256/product/productconnect"
	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/pgpool"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/internal/seed"
	"github.com/minizon/minizon/services/product/catalog"
	"github.com/minizon/minizon/services/product/store"
)

// Config is ProductService's configuration.
type Config struct {
	// DatabaseURL is ProductService's own database (DATABASE_URL).
	DatabaseURL string
	// Tokens are the access tokens callers may present (PRODUCT_TOKENS,
	// comma-separated). Several may be accepted at once so that a token
	// can be rotated without downtime: add the new one, move the callers,
	// drop the old one.
	Tokens []string
	// SeedDemo adds the demo catalog on start, keeping existing rows
	// (MINIZON_SEED; default false, true in `minizon dev`).
	SeedDemo bool
}

// ReadConfig reads ProductService's variables; errors are collected in env.
func ReadConfig(env *envconf.Reader) Config {
	return Config{
		DatabaseURL: env.String("DATABASE_URL", ""),
		Tokens:      env.List("PRODUCT_TOKENS", nil),
		SeedDemo:    env.Bool("MINIZON_SEED", false),
	}
}

// Validate reports missing or invalid settings. It never quotes a token.
func (c Config) Validate() error {
	var errs []error
	if c.DatabaseURL == "" {
		errs = append(errs, errors.New("DATABASE_URL is required"))
	}
	if len(c.Tokens) == 0 {
		errs = append(errs, errors.New("PRODUCT_TOKENS is required: at least one access token"))
	}
	for i, t := range c.Tokens {
		if strings.TrimSpace(t) == "" {
			errs = append(errs, fmt.Errorf("PRODUCT_TOKENS: token %d is empty", i+1))
		}
	}
	return errors.Join(errs...)
}

// App is ProductService connected to its database.
type App struct {
	cfg      Config
	log      *slog.Logger
	pool     *pgxpool.Pool
	products *catalog.Service
}

// Open migrates the database, connects to it and, if configured, adds the
// demo catalog.
func Open(ctx context.Context, cfg Config, deps platform.Deps) (*App, error) {
	log := deps.Log
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pool, err := pgpool.Open(ctx, "product", cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	st := store.New(pool)
	if cfg.SeedDemo {
		n, err := st.SeedMissing(ctx, demoProducts())
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("seed demo catalog: %w", err)
		}
		log.Info("seeded demo catalog", "skus", seed.CatalogSize, "new_rows", n)
	}
	return &App{cfg: cfg, log: log, pool: pool, products: catalog.NewService(st)}, nil
}

// demoProducts is the deterministic demo catalog that every service of
// `minizon dev` shares.
func demoProducts() []catalog.Product {
	demo := seed.Products(seed.SKUs(seed.CatalogSize))
	out := make([]catalog.Product, len(demo))
	for i, p := range demo {
		out[i] = catalog.Product{SKU: p.SKU, Name: p.Name, Price: p.Price}
	}
	return out
}

// Handlers implements platform.App: ProductService.
func (a *App) Handlers(opts []connect.HandlerOption) []platform.Handler {
	path, h := productconnect.NewProductServiceHandler(NewServer(a.products, a.cfg.Tokens, a.log), opts...)
	return []platform.Handler{{Service: productconnect.ProductServiceName, Path: path, HTTP: h}}
}

// Workers implements platform.App: ProductService has none.
func (a *App) Workers() []func(context.Context) error { return nil }

// Close closes the database connections. Call it after the server stopped.
func (a *App) Close(context.Context) { a.pool.Close() }

// Run runs ProductService alone: `minizon product`.
func Run(ctx context.Context, pcfg platform.Config, cfg Config, deps platform.Deps) error {
	app, err := Open(ctx, cfg, deps)
	if err != nil {
		return err
	}
	return platform.RunApp(ctx, pcfg, deps, "product", app)
}

// Import loads the CSV file at path into the catalog of databaseURL:
// `minizon product import FILE.csv`. The whole file is checked first; if
// any line is bad nothing is loaded and the error (a *catalog.ImportError)
// lists the bad lines. Otherwise every product is inserted or updated in
// one transaction and a summary is written to out.
func Import(ctx context.Context, databaseURL, path string, out io.Writer) error {
	if databaseURL == "" {
		return errors.New("DATABASE_URL is required")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	products, err := catalog.ParseCSV(f)
	if err != nil {
		return fmt.Errorf("%s: nothing imported: %w", path, err)
	}
	pool, err := pgpool.Open(ctx, "product", databaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	inserted, updated, err := store.New(pool).Import(ctx, products)
	if err != nil {
		return fmt.Errorf("import %s: nothing imported: %w", path, err)
	}
	unchanged := int64(len(products)) - inserted - updated
	_, err = fmt.Fprintf(out, "imported %d products from %s (%d new, %d updated, %d unchanged)\n",
		len(products), path, inserted, updated, unchanged)
	return err
}
