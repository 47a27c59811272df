package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/minizon/minizon/internal/envconf"
	"github.com/minizon/minizon/internal/pgcluster"
	"github.com/minizon/minizon/internal/platform"
	"github.com/minizon/minizon/services/loms"
)

// devConfig is what only `minizon dev` reads.
type devConfig struct {
	// DataDir holds the embedded Postgres cluster (MINIZON_DATA_DIR).
	DataDir string
	// KafkaPort is the embedded broker's port, 0 for any free one
	// (MINIZON_KAFKA_PORT).
	KafkaPort int
	// Seed adds the demo catalog's stock on start (MINIZON_SEED).
	Seed bool
}

func readDevConfig(env *envconf.Reader) devConfig {
	return devConfig{
		DataDir:   env.String("MINIZON_DATA_DIR", ".minizon"),
		KafkaPort: int(env.Int("MINIZON_KAFKA_PORT", 0, 0, 65535)),
		Seed:      env.Bool("MINIZON_SEED", true),
	}
}

// runDev runs every service on one port, with a private Postgres cluster
// unless DATABASE_URL is set and an in-process Kafka broker unless
// KAFKA_BROKERS is set.
func runDev(ctx context.Context, pcfg platform.Config, dcfg devConfig, lcfg loms.Config, out io.Writer) error {
	log := platform.NewLogger(pcfg.LogLevel)
	// Take the port first: a second instance fails here, before touching
	// anything of the first one's.
	srv := platform.NewServer(pcfg, log)
	ln, err := srv.Listen()
	if err != nil {
		return err
	}
	defer ln.Close()

	serverURL := lcfg.DatabaseURL
	if serverURL == "" {
		dir, err := filepath.Abs(filepath.Join(dcfg.DataDir, "postgres"))
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
	lomsURL, err := pgcluster.DatabaseURL(serverURL, "loms")
	if err != nil {
		return err
	}
	if err := pgcluster.CreateDatabase(ctx, serverURL, "loms", ""); err != nil {
		return err
	}
	lcfg.DatabaseURL = lomsURL

	if len(lcfg.KafkaBrokers) == 0 {
		broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(dcfg.KafkaPort),
			kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(3))
		if err != nil {
			return fmt.Errorf("embedded kafka: %w", err)
		}
		defer broker.Close()
		lcfg.KafkaBrokers = broker.ListenAddrs()
		log.Info("embedded kafka started", "brokers", lcfg.KafkaBrokers)
	}

	lcfg.SeedDemo = dcfg.Seed
	app, err := loms.Open(ctx, lcfg, log)
	if err != nil {
		return err
	}
	defer app.Close(context.WithoutCancel(ctx))

	app.Mount(srv)
	printBanner(out, "http://"+ln.Addr().String(), lcfg.KafkaBrokers)
	return srv.Run(ctx, ln, app.Workers()...)
}

func printBanner(out io.Writer, base string, brokers []string) {
	fmt.Fprintf(out, `miniZON is running at %[1]s (Connect, gRPC and gRPC-Web on one port)
Kafka brokers: %[2]v (topic loms.order-events)

Try it:
  go tool -modfile=tools/go.mod buf curl --protocol grpc --http2-prior-knowledge \
    --data '{"sku": 773297411}' %[1]s/minizon.loms.v1.LomsService/Stocks
  curl -H 'Content-Type: application/json' \
    -d '{"user": 1, "items": [{"sku": 773297411, "count": 2}]}' \
    %[1]s/minizon.loms.v1.LomsService/CreateOrder

Press Ctrl+C to stop.
`, base, brokers)
}
