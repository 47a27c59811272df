// Command minizon runs miniZON: `minizon dev` runs every service on one port
// with an embedded Postgres and Kafka; `minizon loms` runs LOMS alone.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage: minizon <command>

commands:
  dev                     run every service on one port with embedded Postgres and Kafka
  loms                    run LOMS alone against DATABASE_URL and KAFKA_BROKERS
  checkout                run Checkout alone against DATABASE_URL, LOMS_ADDR and PRODUCT_ADDR
  product                 run ProductService alone against DATABASE_URL
  product import FILE.csv load a catalog (sku,name,price) into DATABASE_URL's products
  notifications           run Notifications alone against DATABASE_URL and KAFKA_BROKERS
  healthcheck [ADDR]      exit 0 if the server at ADDR (default MINIZON_ADDR) is SERVING
  bench [FLAGS]           drive load against a deployment (bench -h lists scenarios and flags)

Configuration is read from environment variables; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// After the first signal starts a graceful shutdown, a second one kills
	// the process at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "minizon:", err)
		stop()
		os.Exit(1)
	}
}
