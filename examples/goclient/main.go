// Command goclient shows how another Go repository calls miniZON through the
// typed Connect clients in github.com/minizon/minizon/gen. That module depends
// only on connectrpc.com/connect and google.golang.org/protobuf, so a client
// pulls in none of the server's dependencies.
//
// It walks one order through its life: it prints the stock of a SKU, puts the
// SKU in a user's cart, buys the cart, watches the order (LOMS streams each
// status change as it is committed), pays for it, and waits until the stream
// says PAYED and ends; LOMS's ListOrder then agrees.
//
// Start the server with `go run ./cmd/minizon dev` in the repository root,
// then, in this directory:
//
//	go run . [-addr http://127.0.0.1:8080] [-protocol grpc|connect|grpcweb]
//	         [-user 1] [-sku 773297411] [-timeout 10s]
//
// It exits with status 1 when a call fails or the order does not end up payed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"time"

	"connectrpc.com/connect"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
)

// config holds the command line settings run needs.
type config struct {
	addr     string // base URL of the server
	protocol string // connect, grpc or grpcweb
	user     int64
	sku      uint32
}

func main() {
	var cfg config
	var sku uint
	flag.StringVar(&cfg.addr, "addr", "http://127.0.0.1:8080", "base URL of miniZON (where `minizon dev` listens)")
	flag.StringVar(&cfg.protocol, "protocol", "grpc", "RPC protocol: connect, grpc or grpcweb")
	flag.Int64Var(&cfg.user, "user", 1, "user whose cart is used")
	flag.UintVar(&sku, "sku", 773297411, "SKU to buy (the default has stock in `minizon dev`)")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline for the whole run")
	flag.Parse()
	if sku > math.MaxUint32 {
		fmt.Fprintf(os.Stderr, "goclient: -sku %d does not fit in 32 bits\n", sku)
		os.Exit(2)
	}
	cfg.sku = uint32(sku)

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := run(ctx, cfg, os.Stdout)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "goclient: %v\n", err)
		// Errors from the server (and from the transport) are *connect.Error
		// values carrying one of the gRPC status codes.
		var cerr *connect.Error
		if errors.As(err, &cerr) {
			fmt.Fprintf(os.Stderr, "goclient: connect code %q, message %q\n", connect.CodeOf(err), cerr.Message())
		}
		os.Exit(1)
	}
}

// run buys cfg.sku for cfg.user and pays for the order, writing progress to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	httpClient, opts, err := transport(cfg.protocol)
	if err != nil {
		return err
	}
	loms := lomsv1connect.NewLomsServiceClient(httpClient, cfg.addr, opts...)
	checkout := checkoutv1connect.NewCheckoutServiceClient(httpClient, cfg.addr, opts...)
	fmt.Fprintf(out, "talking %s to %s\n", cfg.protocol, cfg.addr)

	// 1. What LOMS has in stock, per warehouse.
	stocks, err := loms.Stocks(ctx, &lomsv1.StocksRequest{Sku: cfg.sku})
	if err != nil {
		return fmt.Errorf("LomsService.Stocks: %w", err)
	}
	if len(stocks.GetStocks()) == 0 {
		fmt.Fprintf(out, "sku %d: not in stock in any warehouse\n", cfg.sku)
	}
	for _, s := range stocks.GetStocks() {
		fmt.Fprintf(out, "sku %d: %d available in warehouse %d\n", cfg.sku, s.GetCount(), s.GetWarehouseId())
	}

	// 2. Put one item in the cart and show the cart with names and prices.
	if _, err := checkout.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: cfg.user, Sku: cfg.sku, Count: 1}); err != nil {
		return fmt.Errorf("CheckoutService.AddToCart: %w", err)
	}
	cart, err := checkout.ListCart(ctx, &checkoutv1.ListCartRequest{User: cfg.user})
	if err != nil {
		return fmt.Errorf("CheckoutService.ListCart: %w", err)
	}
	fmt.Fprintf(out, "cart of user %d:\n", cfg.user)
	for _, it := range cart.GetItems() {
		fmt.Fprintf(out, "  %d × %q (sku %d) at %d\n", it.GetCount(), it.GetName(), it.GetSku(), it.GetPrice())
	}
	fmt.Fprintf(out, "  total price %d\n", cart.GetTotalPrice())

	// 3. Buy the cart: Checkout asks LOMS to make an order and reserve stock.
	bought, err := checkout.Purchase(ctx, &checkoutv1.PurchaseRequest{User: cfg.user})
	if err != nil {
		return fmt.Errorf("CheckoutService.Purchase: %w", err)
	}
	id := bought.GetOrderId()
	fmt.Fprintf(out, "order %d created, status %s\n", id, bought.GetStatus())
	if bought.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
		return fmt.Errorf("order %d is %s, not awaiting payment (out of stock?)", id, bought.GetStatus())
	}

	// 4. Watch the order: a server stream whose first message is the
	// current status, then one message per change, until a final status.
	stream, err := loms.WatchOrder(ctx, &lomsv1.WatchOrderRequest{OrderId: id})
	if err != nil {
		return fmt.Errorf("LomsService.WatchOrder: %w", err)
	}
	defer stream.Close()
	if !stream.Receive() {
		return fmt.Errorf("LomsService.WatchOrder: the stream ended before its first message: %w", stream.Err())
	}
	first := stream.Msg()
	fmt.Fprintf(out, "watching order %d: %s, pay by %s\n", id, first.GetStatus(), first.GetPayBy().AsTime().Local().Format(time.TimeOnly))

	// 5. Pay for it; the stream tells of the payment and ends.
	if _, err := loms.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: id}); err != nil {
		return fmt.Errorf("LomsService.OrderPayed: %w", err)
	}
	last := first
	for stream.Receive() {
		// While nothing changes, LOMS repeats the last status now and then
		// as a keep-alive: only a new status is news.
		if m := stream.Msg(); m.GetStatus() != last.GetStatus() {
			fmt.Fprintf(out, "order %d is now %s (changed at %s)\n", id, m.GetStatus(), m.GetChangedAt().AsTime().Local().Format(time.TimeOnly))
			last = m
		}
	}
	if err := stream.Err(); err != nil {
		return fmt.Errorf("LomsService.WatchOrder: %w", err)
	}
	if last.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_PAYED {
		return fmt.Errorf("the watch of order %d ended at %s, want %s", id, last.GetStatus(), lomsv1.OrderStatus_ORDER_STATUS_PAYED)
	}

	// 6. Read the order back: LOMS agrees.
	order, err := loms.ListOrder(ctx, &lomsv1.ListOrderRequest{OrderId: id})
	if err != nil {
		return fmt.Errorf("LomsService.ListOrder: %w", err)
	}
	if order.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_PAYED {
		return fmt.Errorf("order %d is %s after OrderPayed, want %s",
			id, order.GetStatus(), lomsv1.OrderStatus_ORDER_STATUS_PAYED)
	}
	fmt.Fprintf(out, "order %d is payed\n", id)
	return nil
}

// transport returns the HTTP client and Connect options for a protocol.
// Connect and gRPC-Web work over HTTP/1.1; gRPC needs HTTP/2, which over a
// plain http:// URL means h2c (HTTP/2 without TLS).
func transport(protocol string) (*http.Client, []connect.ClientOption, error) {
	switch protocol {
	case "connect":
		return &http.Client{}, nil, nil
	case "grpcweb":
		return &http.Client{}, []connect.ClientOption{connect.WithGRPCWeb()}, nil
	case "grpc":
		p := new(http.Protocols)
		p.SetUnencryptedHTTP2(true) // h2c for http:// URLs
		p.SetHTTP2(true)            // HTTP/2 over TLS for https:// URLs
		return &http.Client{Transport: &http.Transport{Protocols: p}}, []connect.ClientOption{connect.WithGRPC()}, nil
	default:
		return nil, nil, fmt.Errorf("unknown -protocol %q: want connect, grpc or grpcweb", protocol)
	}
}
