package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"connectrpc.com/grpchealth"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/gen/minizon/checkout/v1/checkoutv1connect"
	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/gen/minizon/loms/v1/lomsv1connect"
)

// Target is the deployment under load, through its generated clients.
type Target struct {
	LOMS     lomsv1connect.LomsServiceClient
	Checkout checkoutv1connect.CheckoutServiceClient
	// Health is the health client of the LOMS server, called by noop.
	Health *grpchealth.Client
	// SKUs are the skus orders and carts pick from; all must be in stock
	// and, for carts, in the catalog. flash-sale orders only the first.
	SKUs []uint32
}

// Settle modes: what create-order does with an order awaiting payment.
const (
	SettleMix    = "mix" // pay one, cancel the next
	SettlePay    = "pay"
	SettleCancel = "cancel"
	SettleNone   = "none" // leave it for LOMS's payment timeout
)

// ScenarioConfig tunes a scenario.
type ScenarioConfig struct {
	// Items is the number of distinct skus per order (create-order,
	// journey) or per cart (list-cart); 0 takes the scenario's default.
	Items int
	// Settle is one of the Settle modes (create-order only: a flash sale's
	// orders are left awaiting payment).
	Settle string
}

// Scenarios names the scenarios NewScenario knows, with what they do.
var Scenarios = []struct{ Name, About string }{
	{"noop", "grpc.health.v1.Health/Check on LOMS's server: the transport's own ceiling"},
	{"stocks", "LOMS Stocks of a random sku"},
	{"create-order", "LOMS CreateOrder of random skus, then OrderPayed or CancelOrder (-settle)"},
	{"flash-sale", "LOMS CreateOrder of 1 unit of the first -skus sku, left awaiting payment; " +
		"a sold-out (FAILED) order is a successful call: give the sku stock that outlasts the run"},
	{"list-cart", "Checkout ListCart of a cart of -items skus filled before the run"},
	{"journey", "Checkout AddToCart of -items skus, ListCart, Purchase, then LOMS OrderPayed"},
	{"watch", "LOMS WatchOrder: -streams streams held open, one new order each, and -rate of them paid a second " +
		"(each replaced by a new one); the time from each change to its watcher's message, and the server's memory (RSS)"},
}

// NewScenario returns the named scenario against t.
func NewScenario(name string, t Target, cfg ScenarioConfig) (Scenario, error) {
	if len(t.SKUs) == 0 {
		return Scenario{}, errors.New("no skus to pick from")
	}
	// The hot sku is the first listed, before sorting: -skus 42,7,9 has a
	// flash sale of 42.
	hot := t.SKUs[0]
	// Items are distinct skus: a list that repeats one must not make
	// repeated items, or a wait for distinct skus that never come.
	t.SKUs = slices.Compact(slices.Sorted(slices.Values(t.SKUs)))
	items := func(def int) (int, error) {
		n := cfg.Items
		if n == 0 {
			n = def
		}
		if n < 1 || n > len(t.SKUs) {
			return 0, fmt.Errorf("items must be between 1 and the %d distinct skus given, got %d", len(t.SKUs), n)
		}
		return n, nil
	}
	switch name {
	case "noop":
		return Scenario{Name: name, Primary: "Health/Check", RPCs: []string{"Health/Check"}, Worker: func(context.Context, int) (Iteration, error) {
			return t.noop, nil
		}}, nil
	case "stocks":
		return Scenario{Name: name, Primary: "Stocks", RPCs: []string{"Stocks"}, Worker: t.stocksWorker}, nil
	case "create-order":
		n, err := items(3)
		if err != nil {
			return Scenario{}, err
		}
		switch cfg.Settle {
		case SettleMix, SettlePay, SettleCancel, SettleNone:
		default:
			return Scenario{}, fmt.Errorf("unknown settle mode %q: want mix, pay, cancel or none", cfg.Settle)
		}
		return Scenario{Name: name, Primary: "CreateOrder", RPCs: createOrderRPCs(cfg.Settle), Worker: func(_ context.Context, i int) (Iteration, error) {
			return t.createOrderWorker(i, n, cfg.Settle), nil
		}}, nil
	case "flash-sale":
		// Every order is 1 unit of one sku, whatever -items says: that is
		// what makes every order wait for the same stock row.
		return Scenario{Name: name, Primary: "CreateOrder", RPCs: []string{"CreateOrder"}, Worker: func(_ context.Context, i int) (Iteration, error) {
			return t.flashSaleWorker(i, hot), nil
		}}, nil
	case "list-cart":
		n, err := items(50)
		if err != nil {
			return Scenario{}, err
		}
		return Scenario{Name: name, Primary: "ListCart", RPCs: []string{"ListCart"}, Worker: func(ctx context.Context, i int) (Iteration, error) {
			return t.listCartWorker(ctx, i, n)
		}}, nil
	case "journey":
		n, err := items(3)
		if err != nil {
			return Scenario{}, err
		}
		return Scenario{Name: name, Primary: "Purchase",
			RPCs: []string{"AddToCart", "ListCart", "Purchase", "OrderPayed"}, Worker: func(_ context.Context, i int) (Iteration, error) {
				return t.journeyWorker(i, n), nil
			}}, nil
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q", name)
}

func createOrderRPCs(settle string) []string {
	switch settle {
	case SettlePay:
		return []string{"CreateOrder", "OrderPayed"}
	case SettleCancel:
		return []string{"CreateOrder", "CancelOrder"}
	case SettleNone:
		return []string{"CreateOrder"}
	}
	return []string{"CreateOrder", "OrderPayed", "CancelOrder"}
}

// newRand gives each worker its own generator, different on every run so
// that repeated runs do not replay the same users and skus.
func newRand(worker int) *rand.Rand {
	return rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(worker)))
}

// randomUser picks from a range wide enough that runs do not share carts.
func randomUser(r *rand.Rand) int64 { return 1 + r.Int64N(1<<40) }

// pickSKUs returns n distinct skus of all.
func pickSKUs(r *rand.Rand, all []uint32, n int) []uint32 {
	if n*2 > len(all) {
		perm := r.Perm(len(all))[:n]
		out := make([]uint32, n)
		for i, p := range perm {
			out[i] = all[p]
		}
		return out
	}
	seen := make(map[uint32]bool, n)
	out := make([]uint32, 0, n)
	for len(out) < n {
		if s := all[r.IntN(len(all))]; !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func (t Target) noop(_ context.Context, call Call) error {
	return call("Health/Check", func(ctx context.Context) error {
		res, err := t.Health.Check(ctx, &grpchealth.CheckRequest{})
		if err == nil && res.Status != grpchealth.StatusServing {
			err = fmt.Errorf("health status %d, want SERVING", res.Status)
		}
		return err
	})
}

func (t Target) stocksWorker(_ context.Context, i int) (Iteration, error) {
	r := newRand(i)
	return func(_ context.Context, call Call) error {
		sku := t.SKUs[r.IntN(len(t.SKUs))]
		return call("Stocks", func(ctx context.Context) error {
			_, err := t.LOMS.Stocks(ctx, &lomsv1.StocksRequest{Sku: sku})
			return err
		})
	}, nil
}

func (t Target) createOrderWorker(i, items int, settle string) Iteration {
	r := newRand(i)
	n := 0
	return func(_ context.Context, call Call) error {
		req := &lomsv1.CreateOrderRequest{User: randomUser(r)}
		for _, sku := range pickSKUs(r, t.SKUs, items) {
			req.Items = append(req.Items, &lomsv1.OrderItem{Sku: sku, Count: 1})
		}
		var res *lomsv1.CreateOrderResponse
		err := call("CreateOrder", func(ctx context.Context) (err error) {
			res, err = t.LOMS.CreateOrder(ctx, req)
			return err
		})
		if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT || settle == SettleNone {
			return err
		}
		n++
		if settle == SettlePay || (settle == SettleMix && n%2 == 0) {
			return t.pay(call, res.GetOrderId())
		}
		return call("CancelOrder", func(ctx context.Context) error {
			_, err := t.LOMS.CancelOrder(ctx, &lomsv1.CancelOrderRequest{OrderId: res.GetOrderId()})
			return err
		})
	}
}

// flashSaleWorker orders 1 unit of sku per iteration, as a new user each
// time (no idempotency key, as create-order sends none), and leaves the
// order as LOMS made it: awaiting payment, or failed when sold out.
func (t Target) flashSaleWorker(i int, sku uint32) Iteration {
	r := newRand(i)
	return func(_ context.Context, call Call) error {
		req := &lomsv1.CreateOrderRequest{User: randomUser(r), Items: []*lomsv1.OrderItem{{Sku: sku, Count: 1}}}
		return call("CreateOrder", func(ctx context.Context) error {
			_, err := t.LOMS.CreateOrder(ctx, req)
			return err
		})
	}
}

func (t Target) pay(call Call, id int64) error {
	return call("OrderPayed", func(ctx context.Context) error {
		_, err := t.LOMS.OrderPayed(ctx, &lomsv1.OrderPayedRequest{OrderId: id})
		return err
	})
}

// listCartWorker fills a cart of its own before the run; the iteration
// lists it and fails unless every item comes back.
func (t Target) listCartWorker(ctx context.Context, i, items int) (Iteration, error) {
	r := newRand(i)
	user := randomUser(r)
	for _, sku := range pickSKUs(r, t.SKUs, items) {
		if _, err := t.Checkout.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: user, Sku: sku, Count: 1}); err != nil {
			return nil, fmt.Errorf("fill the cart of user %d: add sku %d: %w", user, sku, err)
		}
	}
	return func(_ context.Context, call Call) error {
		return call("ListCart", func(ctx context.Context) error {
			res, err := t.Checkout.ListCart(ctx, &checkoutv1.ListCartRequest{User: user})
			if err == nil && len(res.GetItems()) != items {
				err = fmt.Errorf("cart of user %d lists %d items, want %d", user, len(res.GetItems()), items)
			}
			return err
		})
	}, nil
}

func (t Target) journeyWorker(i, items int) Iteration {
	r := newRand(i)
	return func(_ context.Context, call Call) error {
		user := randomUser(r)
		for _, sku := range pickSKUs(r, t.SKUs, items) {
			err := call("AddToCart", func(ctx context.Context) error {
				_, err := t.Checkout.AddToCart(ctx, &checkoutv1.AddToCartRequest{User: user, Sku: sku, Count: 1})
				return err
			})
			if err != nil {
				return err
			}
		}
		err := call("ListCart", func(ctx context.Context) error {
			_, err := t.Checkout.ListCart(ctx, &checkoutv1.ListCartRequest{User: user})
			return err
		})
		if err != nil {
			return err
		}
		var res *checkoutv1.PurchaseResponse
		err = call("Purchase", func(ctx context.Context) (err error) {
			res, err = t.Checkout.Purchase(ctx, &checkoutv1.PurchaseRequest{User: user})
			return err
		})
		if err != nil || res.GetStatus() != lomsv1.OrderStatus_ORDER_STATUS_AWAITING_PAYMENT {
			return err
		}
		return t.pay(call, res.GetOrderId())
	}
}
