package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/pgcluster"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/services/checkout"
	"github.com/minizon/minizon/services/loms"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/product"
	"github.com/minizon/minizon/web"
)

// devSettings are what only `minizon dev` reads.
type devSettings struct {
	// DataDir holds the embedded Postgres cluster (MINIZON_DATA_DIR).
	DataDir string
	// KafkaPort is the embedded broker's port, 0 for any free one
	// (MINIZON_KAFKA_PORT).
	KafkaPort int
	// Seed adds the demo catalog and its stock on start (MINIZON_SEED).
	Seed bool
}

func readDevConfig(env *envconf.Reader) devSettings {
	return devSettings{
		DataDir:   env.String("MINIZON_DATA_DIR", ".minizon"),
		KafkaPort: int(env.Int("MINIZON_KAFKA_PORT", 0, 0, 65535)),
		Seed:      env.Bool("MINIZON_SEED", true),
	}
}

// devConfig is every service's configuration as `minizon dev` read it, before
// it fills in what it runs itself.
type devConfig struct {
	dev           devSettings
	loms          loms.Config
	checkout      checkout.Config
	product       product.Config
	notifications notifications.Config
}

// DevToken is the ProductService token `minizon dev` accepts and Checkout
// sends, unless PRODUCT_TOKENS and PRODUCT_TOKEN say otherwise; it is the one
// the original public ProductService took.
const DevToken = "testtoken"

// runDev runs every service on one port, with a private Postgres cluster
// unless DATABASE_URL is set and an in-process Kafka broker unless
// KAFKA_BROKERS is set. Checkout reaches LOMS and ProductService over the
// network like anywhere else, on this same port unless LOMS_ADDR or
// PRODUCT_ADDR point elsewhere.
func runDev(ctx context.Context, pcfg platform.Config, cfg devConfig, deps platform.Deps, out io.Writer) error {
	// Take the port first: a second instance fails here, before touching
	// anything of the first one's.
	srv, err := platform.NewServer(pcfg, deps.Log, deps.Tel)
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	defer ln.Close()
	serverURL, stopPostgres, err := devPostgres(ctx, cfg, deps.Log)
	if err != nil {
		return err
	}
	defer stopPostgres()
	brokers, stopKafka, err := devKafka(cfg, deps.Log)
	if err != nil {
		return err
	}
	defer stopKafka()
	if err := cfg.resolve(ctx, serverURL, brokers, dialAddr(ln.Addr()), pcfg.AuthTokens); err != nil {
		return err
	}
	apps, err := cfg.open(ctx, deps)
	defer func() {
		for i := len(apps) - 1; i >= 0; i-- {
			apps[i].Close(context.WithoutCancel(ctx))
		}
	}()
	if err != nil {
		return err
	}
	var workers []func(context.Context) error
	for _, app := range apps {
		srv.MountApp(app)
		workers = append(workers, app.Workers()...)
	}
	page, err := web.Storefront()
	if err != nil {
		return err
	}
	srv.HandleRest(page)
	printBanner(out, "http://"+ln.Addr().String(), brokers, serverURL)
	return srv.Run(ctx, ln, workers...)
}

// devPostgres is the Postgres server of DATABASE_URL, or else a private
// cluster in the data dir, started here; stop stops what was started.
func devPostgres(ctx context.Context, cfg devConfig, log *slog.Logger) (serverURL string, stop func(), err error) {
	if cfg.loms.DatabaseURL != "" {
		return cfg.loms.DatabaseURL, func() {}, nil
	}
	dir, err := filepath.Abs(filepath.Join(cfg.dev.DataDir, "postgres"))
	if err != nil {
		return "", nil, fmt.Errorf("data dir: %w", err)
	}
	cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
	if err != nil {
		return "", nil, fmt.Errorf("embedded postgres: %w", err)
	}
	serverURL = cluster.URL("postgres")
	log.Info("embedded postgres started", "dir", dir, "url", serverURL)
	return serverURL, func() {
		if err := cluster.Stop(); err != nil {
			log.Warn("stop embedded postgres", "error", err.Error())
		}
	}, nil
}

// devKafka is KAFKA_BROKERS, or else an in-process broker started here.
func devKafka(cfg devConfig, log *slog.Logger) (brokers []string, stop func(), err error) {
	if len(cfg.loms.KafkaBrokers) > 0 {
		return cfg.loms.KafkaBrokers, func() {}, nil
	}
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(cfg.dev.KafkaPort),
		kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
	if err != nil {
		return nil, nil, fmt.Errorf("embedded kafka: %w", err)
	}
	brokers = broker.ListenAddrs()
	log.Info("embedded kafka started", "brokers", brokers)
	return brokers, broker.Close, nil
}

// resolve fills in what `minizon dev` provides itself: one database per
// service on serverURL, the brokers, this server's address for Checkout's
// dependencies, the demo data, ProductService's token and, when auth is on,
// the token Checkout sends LOMS.
func (cfg *devConfig) resolve(ctx context.Context, serverURL string, brokers []string, self string, authTokens []string) error {
	urls := map[string]string{}
	for _, name := range []string{"loms", "checkout", "product", "notifications"} {
		if err := pgcluster.CreateDatabase(ctx, serverURL, name, ""); err != nil {
			return err
		}
		var err error
		if urls[name], err = pgcluster.DatabaseURL(serverURL, name); err != nil {
			return err
		}
	}
	l, p, c, n := &cfg.loms, &cfg.product, &cfg.checkout, &cfg.notifications
	l.DatabaseURL, l.KafkaBrokers, l.SeedDemo = urls["loms"], brokers, cfg.dev.Seed
	p.DatabaseURL, p.SeedDemo = urls["product"], cfg.dev.Seed
	if len(p.Tokens) == 0 {
		p.Tokens = []string{DevToken}
	}
	c.DatabaseURL = urls["checkout"]
	c.LOMS.Addr = cmp.Or(c.LOMS.Addr, self)
	c.Product.Addr = cmp.Or(c.Product.Addr, self)
	c.Products.Token = cmp.Or(c.Products.Token, p.Tokens[0])
	// Off unless MINIZON_AUTH_TOKENS is set; then Checkout's calls to the
	// LOMS beside it carry the first token.
	if c.LOMS.AuthToken == "" && len(authTokens) > 0 {
		c.LOMS.AuthToken = authTokens[0]
	}
	n.DatabaseURL, n.KafkaBrokers = urls["notifications"], brokers
	return nil
}

// open opens every service; the caller closes what it returns, the apps
// opened before a failure included.
func (cfg *devConfig) open(ctx context.Context, deps platform.Deps) ([]platform.App, error) {
	var apps []platform.App
	opens := []func() (platform.App, error){
		func() (platform.App, error) { return loms.Open(ctx, cfg.loms, deps) },
		func() (platform.App, error) { return product.Open(ctx, cfg.product, deps) },
		func() (platform.App, error) { return checkout.Open(ctx, cfg.checkout, deps) },
		func() (platform.App, error) { return notifications.Open(ctx, cfg.notifications, deps) },
	}
	for _, open := range opens {
		app, err := open()
		if err != nil {
			return apps, err
		}
		apps = append(apps, app)
	}
	return apps, nil
}

// dialAddr is the address to reach a listener at from this host: a
// wildcard listen address is not one to dial, and a wildcard listener
// (dual-stack for "::") takes IPv4 loopback connections.
func dialAddr(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp.Port))
}

func printBanner(out io.Writer, base string, brokers []string, postgres string) {
	fmt.Fprintf(out, `miniZON is running at %[1]s (Connect, gRPC and gRPC-Web on one port)
Storefront: open %[1]s/ in a browser
Kafka brokers: %[2]v (topic loms.order-events)
Postgres: %[3]s (databases loms, checkout, product, notifications)
Metrics: %[1]s/metrics · Notifications are log lines with msg="notification sent"

Try it:
  curl -H 'Content-Type: application/json' -d '{"user": 1, "sku": 773297411, "count": 2}' \
    %[1]s/minizon.checkout.v1.CheckoutService/AddToCart
  curl -H 'Content-Type: application/json' -d '{"user": 1}' %[1]s/minizon.checkout.v1.CheckoutService/ListCart
  curl -H 'Content-Type: application/json' -d '{"user": 1}' %[1]s/minizon.checkout.v1.CheckoutService/Purchase
  # then pay with the order id Purchase returned:
  curl -H 'Content-Type: application/json' -d '{"order_id": 1}' %[1]s/minizon.loms.v1.LomsService/OrderPayed
  go tool -modfile=tools/go.mod buf curl --protocol grpc --http2-prior-knowledge \
    --data '{"sku": 773297411}' %[1]s/minizon.loms.v1.LomsService/Stocks

Press Ctrl+C to stop.
`, base, brokers, pgcluster.Redacted(postgres))
}
