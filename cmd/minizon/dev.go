package main

import (
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
	"github.com/minizon/minizon/internal/telemetry"
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
func runDev(ctx context.Context, pcfg platform.Config, cfg devConfig, log *slog.Logger, tel *telemetry.Telemetry,
	out io.Writer) error {
	// Take the port first: a second instance fails here, before touching
	// anything of the first one's.
	srv, err := platform.NewServer(pcfg, log, tel)
	if err != nil {
		return err
	}
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	defer ln.Close()
	self := dialAddr(ln.Addr())

	serverURL := cfg.loms.DatabaseURL
	if serverURL == "" {
		dir, err := filepath.Abs(filepath.Join(cfg.dev.DataDir, "postgres"))
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		cluster, err := pgcluster.Start(ctx, pgcluster.Options{Dir: dir})
		if err != nil {
			return fmt.Errorf("embedded postgres: %w", err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				log.Warn("stop embedded postgres", "error", err.Error())
			}
		}()
		serverURL = cluster.URL("postgres")
		log.Info("embedded postgres started", "dir", dir, "url", serverURL)
	}
	// One server, one database per service.
	urls := map[string]string{}
	for _, name := range []string{"loms", "checkout", "product", "notifications"} {
		if err := pgcluster.CreateDatabase(ctx, serverURL, name, ""); err != nil {
			return err
		}
		if urls[name], err = pgcluster.DatabaseURL(serverURL, name); err != nil {
			return err
		}
	}

	lcfg := cfg.loms
	lcfg.DatabaseURL = urls["loms"]
	lcfg.SeedDemo = cfg.dev.Seed
	if len(lcfg.KafkaBrokers) == 0 {
		broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(cfg.dev.KafkaPort),
			kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
		if err != nil {
			return fmt.Errorf("embedded kafka: %w", err)
		}
		defer broker.Close()
		lcfg.KafkaBrokers = broker.ListenAddrs()
		log.Info("embedded kafka started", "brokers", lcfg.KafkaBrokers)
	}

	prcfg := cfg.product
	prcfg.DatabaseURL = urls["product"]
	prcfg.SeedDemo = cfg.dev.Seed
	if len(prcfg.Tokens) == 0 {
		prcfg.Tokens = []string{DevToken}
	}

	ccfg := cfg.checkout
	ccfg.DatabaseURL = urls["checkout"]
	if ccfg.LOMS.Addr == "" {
		ccfg.LOMS.Addr = self
	}
	if ccfg.Product.Addr == "" {
		ccfg.Product.Addr = self
	}
	if ccfg.Products.Token == "" {
		ccfg.Products.Token = prcfg.Tokens[0]
	}
	// Off unless MINIZON_AUTH_TOKENS is set; then Checkout's calls to the
	// LOMS beside it carry the first token.
	if ccfg.LOMS.AuthToken == "" && len(pcfg.AuthTokens) > 0 {
		ccfg.LOMS.AuthToken = pcfg.AuthTokens[0]
	}

	ncfg := cfg.notifications
	ncfg.DatabaseURL = urls["notifications"]
	ncfg.KafkaBrokers = lcfg.KafkaBrokers

	lapp, err := loms.Open(ctx, lcfg, log, tel)
	if err != nil {
		return err
	}
	defer lapp.Close(context.WithoutCancel(ctx))
	papp, err := product.Open(ctx, prcfg, log)
	if err != nil {
		return err
	}
	defer papp.Close()
	capp, err := checkout.Open(ctx, ccfg, log, tel)
	if err != nil {
		return err
	}
	defer capp.Close()
	napp, err := notifications.Open(ctx, ncfg, log, tel)
	if err != nil {
		return err
	}
	defer napp.Close()

	lapp.Mount(srv)
	papp.Mount(srv)
	capp.Mount(srv)
	page, err := web.Storefront()
	if err != nil {
		return err
	}
	srv.HandleRest(page)
	printBanner(out, "http://"+ln.Addr().String(), lcfg.KafkaBrokers, serverURL)
	return srv.Run(ctx, ln, append(lapp.Workers(), napp.Worker())...)
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
