package cart_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/big"
	"slices"
	"strings"
	"testing"

	checkoutv1 "github.com/minizon/minizon/gen/minizon/checkout/v1"
	"github.com/minizon/minizon/internal/rpctest"
	"github.com/minizon/minizon/internal/validate"
	"github.com/minizon/minizon/services/checkout/cart"
)

// The limits of the API contract (ARCHITECTURE.md), spelled out rather than
// taken from the packages, so that a changed constant fails here.
const (
	contractMaxCount = 65535
	contractMaxItems = 1000
)

// Cart operations of FuzzCart; each takes opSize bytes: the kind, then
// sku, count and stock as little-endian uint32s.
const (
	opAdd = iota
	opRemove
	opFill // adds count%1100 consecutive skus from sku, one unit each
	opList
	opKinds

	opSize = 13
)

func ops(kindSKUCountStock ...uint32) []byte {
	var b []byte
	for i := 0; i+3 < len(kindSKUCountStock); i += 4 {
		b = append(b, byte(kindSKUCountStock[i]))
		b = binary.LittleEndian.AppendUint32(b, kindSKUCountStock[i+1])
		b = binary.LittleEndian.AppendUint32(b, kindSKUCountStock[i+2])
		b = binary.LittleEndian.AppendUint32(b, kindSKUCountStock[i+3])
	}
	return b
}

// FuzzCart runs a sequence of Add, Remove and listing operations on a cart
// and a model of it. Operations get what Service lets through: a sku other
// than 0 and a count from 1 up (Add rejects counts above 65535 itself).
// After each, the cart equals the model and keeps its invariants: one line
// per sku in sku order, counts from 1 to 65535, at most 1000 skus; a
// refused Add changes nothing; a change forgets the last order; a
// listing's total is the exact sum of count × price.
func FuzzCart(f *testing.F) {
	f.Add(ops(opAdd, 7, 2, 10, opAdd, 7, 3, 10, opRemove, 7, 1, 0, opList, 0, 0, 0))
	f.Add(ops(opAdd, 7, 65535, math.MaxUint32, opAdd, 7, 1, math.MaxUint32, opAdd, 8, 65536, math.MaxUint32))
	f.Add(ops(opAdd, 5, 10, 9, opAdd, 5, 10, 10, opRemove, 5, 11, 0, opRemove, 6, 1, 0))
	f.Add(ops(opAdd, math.MaxUint32, 1, 1, opAdd, 1, 1, 1, opAdd, 1<<31, 1, 1, opList, 0, 0, 0))
	f.Add(ops(opFill, 1, 1000, 0, opAdd, 5000, 1, 1, opAdd, 1, 1, 2, opList, 0, 0, 0))
	f.Add(ops(opFill, math.MaxUint32-10, 999, 0, opRemove, math.MaxUint32, 1, 0, opFill, 20, 5, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		var (
			c     cart.Cart
			model = map[uint32]uint32{}
			last  = &cart.Order{ID: 1, Status: cart.StatusAwaitingPayment}
		)
		add := func(sku, count uint32, stock uint64) {
			c.LastOrder = last
			before := slices.Clone(c.Items)
			err := c.Add(sku, count, stock)
			have, found := model[sku]
			want := uint64(have) + uint64(count)
			switch {
			case !found && len(model) >= contractMaxItems, want > contractMaxCount:
				if !errors.Is(err, cart.ErrCartFull) {
					t.Fatalf("Add(%d, %d, %d) to %d skus holding %d: %v, want ErrCartFull", sku, count, stock, len(model), have, err)
				}
			case want > stock:
				if !errors.Is(err, cart.ErrOutOfStock) {
					t.Fatalf("Add(%d, %d, %d) holding %d: %v, want ErrOutOfStock", sku, count, stock, have, err)
				}
			default:
				if err != nil {
					t.Fatalf("Add(%d, %d, %d) holding %d: %v", sku, count, stock, have, err)
				}
				model[sku] = uint32(want)
			}
			if err != nil && (!slices.Equal(c.Items, before) || c.LastOrder != last) {
				t.Fatalf("refused Add(%d, %d) changed the cart", sku, count)
			}
			if err == nil && c.LastOrder != nil {
				t.Fatal("Add kept the last order")
			}
		}
		for ; len(data) >= opSize; data = data[opSize:] {
			sku := binary.LittleEndian.Uint32(data[1:])
			count := binary.LittleEndian.Uint32(data[5:])
			stock := uint64(binary.LittleEndian.Uint32(data[9:]))
			switch data[0] % opKinds {
			case opAdd:
				if sku != 0 && count != 0 {
					add(sku, count, stock)
				}
			case opRemove:
				if sku == 0 || count == 0 {
					break
				}
				c.LastOrder = last
				c.Remove(sku, count)
				have, found := model[sku]
				switch {
				case !found:
				case have <= count:
					delete(model, sku)
				default:
					model[sku] = have - count
				}
				if found == (c.LastOrder != nil) {
					t.Fatalf("Remove(%d) of a line held=%v left the last order %v", sku, found, c.LastOrder)
				}
			case opFill:
				for i := range count % 1100 {
					if s := sku + i; s != 0 {
						add(s, 1, math.MaxUint32)
					}
				}
			case opList:
				checkListing(t, c.Items)
			}
			checkCart(t, &c, model)
		}
	})
}

// checkCart fails unless c holds exactly model and keeps its invariants.
func checkCart(t *testing.T, c *cart.Cart, model map[uint32]uint32) {
	t.Helper()
	if len(c.Items) > contractMaxItems || len(c.Items) != len(model) || c.Empty() != (len(model) == 0) {
		t.Fatalf("cart of %d lines, model of %d", len(c.Items), len(model))
	}
	for i, it := range c.Items {
		if i > 0 && c.Items[i-1].SKU >= it.SKU {
			t.Fatalf("lines not in strict sku order at %d", i)
		}
		if it.SKU == 0 || it.Count == 0 || it.Count > contractMaxCount || model[it.SKU] != it.Count || c.Count(it.SKU) != it.Count {
			t.Fatalf("line %+v, model %d", it, model[it.SKU])
		}
	}
	for _, sku := range slices.Sorted(maps.Keys(model)) {
		if c.Count(sku) != model[sku] {
			t.Fatalf("Count(%d) = %d, model %d", sku, c.Count(sku), model[sku])
		}
	}
}

// checkListing prices items with prices up to the largest uint32 and
// checks the total against arbitrary-precision arithmetic.
func checkListing(t *testing.T, items []cart.Item) {
	t.Helper()
	products := make([]cart.Product, len(items))
	want := new(big.Int)
	for i, it := range items {
		price := uint32(math.MaxUint32) - it.SKU%3
		products[i] = cart.Product{Name: fmt.Sprint("product ", it.SKU), Price: price}
		want.Add(want, new(big.Int).Mul(big.NewInt(int64(it.Count)), big.NewInt(int64(price))))
	}
	l := cart.NewListing(items, products)
	if !want.IsUint64() || want.Uint64() != l.Total {
		t.Fatalf("total %d, want %s", l.Total, want)
	}
	for i, ln := range l.Lines {
		if ln.Item != items[i] || ln.Product != products[i] {
			t.Fatalf("line %d is %+v", i, ln)
		}
	}
}

// fuzzDeps are Service's dependencies without I/O. They record what they
// were asked. Stock holds 100 units of every sku; the catalog knows every
// sku; LOMS makes order 1, awaiting payment.
type fuzzDeps struct {
	calls   int
	carts   map[int64]*cart.Cart
	stocked []uint32
	ordered []cart.Item
	user    int64
}

func (d *fuzzDeps) Items(_ context.Context, user int64) ([]cart.Item, error) {
	d.calls++
	d.user = user
	if c := d.carts[user]; c != nil {
		return slices.Clone(c.Items), nil
	}
	return nil, nil
}

func (d *fuzzDeps) Update(_ context.Context, user int64, fn func(*cart.Cart) error) error {
	d.calls++
	d.user = user
	c := cart.Cart{User: user}
	if old := d.carts[user]; old != nil {
		c = *old
		c.Items = slices.Clone(old.Items)
	}
	if err := fn(&c); err != nil {
		return err
	}
	d.carts[user] = &c
	return nil
}

func (d *fuzzDeps) Available(_ context.Context, sku uint32) (uint64, error) {
	d.calls++
	d.stocked = append(d.stocked, sku)
	return 100, nil
}

func (d *fuzzDeps) Create(_ context.Context, user int64, items []cart.Item, key string) (cart.Order, error) {
	d.calls++
	if key == "" {
		return cart.Order{}, errors.New("purchase without an idempotency key")
	}
	d.ordered = slices.Clone(items)
	return cart.Order{ID: 1, Status: cart.StatusAwaitingPayment}, nil
}

func (d *fuzzDeps) Products(_ context.Context, skus []uint32) ([]cart.Product, error) {
	d.calls++
	out := make([]cart.Product, len(skus))
	for i, sku := range skus {
		out[i] = cart.Product{Name: fmt.Sprint("product ", sku), Price: sku % 1000}
	}
	return out, nil
}

// newService is a Service over d; an order's items are what was ordered.
func (d *fuzzDeps) newService() *cart.Service {
	return cart.NewService(d, d, orders{d}, d)
}

// orders is fuzzDeps as cart.Orders, whose Items clashes with the
// repository's; its Items returns what LOMS last ordered.
type orders struct{ d *fuzzDeps }

func (o orders) Create(ctx context.Context, user int64, items []cart.Item, key string) (cart.Order, error) {
	return o.d.Create(ctx, user, items, key)
}

func (o orders) Items(context.Context, int64) ([]cart.Item, error) {
	return slices.Clone(o.d.ordered), nil
}

// The Checkout RPCs FuzzServiceRequests picks from.
const (
	rpcAddToCart = iota
	rpcDeleteFromCart
	rpcListCart
	rpcPurchase
	checkoutRPCs
)

// FuzzServiceRequests decodes each Checkout request from raw bytes (binary
// and JSON) and passes it to the cart.Service method its handler calls,
// for a user whose cart holds 5 units of sku 7. A request is accepted
// exactly when its user is positive and, for AddToCart and
// DeleteFromCart, its sku is not 0 and its count within 1..65535; then the
// cart changes as asked. Otherwise it is rejected before any dependency is
// asked, with a *validate.Error on the first bad field (the server maps it
// to InvalidArgument) and a message naming every bad field. Every other
// error is one the server maps to FailedPrecondition.
func FuzzServiceRequests(f *testing.F) {
	for _, req := range []*checkoutv1.AddToCartRequest{
		{User: 1, Sku: 7, Count: 1}, {User: 1, Sku: 7, Count: 95}, {User: 1, Sku: 7, Count: 96}, {User: 1, Sku: 8, Count: 65535},
		{User: 1, Sku: 8, Count: 65536}, {User: 0, Sku: 0, Count: 0}, {User: -1, Sku: 1, Count: math.MaxUint32},
		{User: math.MaxInt64, Sku: math.MaxUint32, Count: 1},
	} {
		f.Add(uint8(rpcAddToCart), rpctest.Marshal(f, req))
		f.Add(uint8(rpcDeleteFromCart), rpctest.Marshal(f, &checkoutv1.DeleteFromCartRequest{User: req.User, Sku: req.Sku, Count: req.Count}))
	}
	for _, user := range []int64{1, 2, 0, -1, math.MaxInt64, math.MinInt64} {
		f.Add(uint8(rpcListCart), rpctest.Marshal(f, &checkoutv1.ListCartRequest{User: user}))
		f.Add(uint8(rpcPurchase), rpctest.Marshal(f, &checkoutv1.PurchaseRequest{User: user}))
	}
	f.Add(uint8(rpcAddToCart), []byte(`{"user":"1","sku":7,"count":2}`))
	f.Add(uint8(rpcDeleteFromCart), []byte(`{"user":1,"sku":7,"count":65535,"unknown":[1]}`))
	f.Add(uint8(rpcPurchase), []byte(`{"user":"2"}`))
	f.Add(uint8(rpcListCart), []byte(`{"user":1.5}`))
	f.Fuzz(func(t *testing.T, rpc uint8, data []byte) {
		ctx := context.Background()
		fresh := func() *fuzzDeps {
			return &fuzzDeps{carts: map[int64]*cart.Cart{1: {User: 1, Items: []cart.Item{{SKU: 7, Count: 5}}}}}
		}
		switch rpc % checkoutRPCs {
		case rpcAddToCart:
			for _, req := range rpctest.DecodeRequests(data, func() *checkoutv1.AddToCartRequest { return new(checkoutv1.AddToCartRequest) }) {
				d := fresh()
				err := d.newService().Add(ctx, req.GetUser(), req.GetSku(), req.GetCount())
				if !checkItemRequest(t, d, req.GetUser(), req.GetSku(), req.GetCount(), err) {
					continue
				}
				held := uint64(0)
				if req.GetUser() == 1 && req.GetSku() == 7 {
					held = 5
				}
				switch want := held + uint64(req.GetCount()); {
				case want > contractMaxCount:
					if !errors.Is(err, cart.ErrCartFull) {
						t.Fatalf("%v: %v, want ErrCartFull", req, err)
					}
				case want > 100:
					if !errors.Is(err, cart.ErrOutOfStock) {
						t.Fatalf("%v: %v, want ErrOutOfStock", req, err)
					}
				default:
					if err != nil || d.carts[req.GetUser()].Count(req.GetSku()) != uint32(want) {
						t.Fatalf("%v: %v", req, err)
					}
				}
				if !slices.Equal(d.stocked, []uint32{req.GetSku()}) {
					t.Fatalf("stock asked about %v", d.stocked)
				}
			}
		case rpcDeleteFromCart:
			for _, req := range rpctest.DecodeRequests(data, func() *checkoutv1.DeleteFromCartRequest { return new(checkoutv1.DeleteFromCartRequest) }) {
				d := fresh()
				err := d.newService().Remove(ctx, req.GetUser(), req.GetSku(), req.GetCount())
				if !checkItemRequest(t, d, req.GetUser(), req.GetSku(), req.GetCount(), err) {
					continue
				}
				if err != nil {
					t.Fatalf("%v: %v", req, err)
				}
				if req.GetUser() == 1 && req.GetSku() == 7 && d.carts[1].Count(7) != uint32(max(5-int64(req.GetCount()), 0)) {
					t.Fatalf("%v left %d", req, d.carts[1].Count(7))
				}
			}
		case rpcListCart:
			for _, req := range rpctest.DecodeRequests(data, func() *checkoutv1.ListCartRequest { return new(checkoutv1.ListCartRequest) }) {
				d := fresh()
				l, err := d.newService().List(ctx, req.GetUser())
				if !checkUserRequest(t, d, req.GetUser(), err) {
					continue
				}
				if err != nil || d.user != req.GetUser() || (req.GetUser() == 1) != (len(l.Lines) == 1) {
					t.Fatalf("%v: %+v, %v", req, l, err)
				}
			}
		case rpcPurchase:
			for _, req := range rpctest.DecodeRequests(data, func() *checkoutv1.PurchaseRequest { return new(checkoutv1.PurchaseRequest) }) {
				d := fresh()
				o, err := d.newService().Purchase(ctx, req.GetUser())
				if !checkUserRequest(t, d, req.GetUser(), err) {
					continue
				}
				switch {
				case req.GetUser() != 1:
					if !errors.Is(err, cart.ErrEmptyCart) {
						t.Fatalf("%v of an empty cart: %v, want ErrEmptyCart", req, err)
					}
				case err != nil || o.ID != 1 || !slices.Equal(d.ordered, []cart.Item{{SKU: 7, Count: 5}}) || !d.carts[1].Empty():
					t.Fatalf("%v: order %+v, %v; ordered %v", req, o, err, d.ordered)
				}
			}
		}
	})
}

// checkUserRequest checks the handling of a request's user: a
// non-positive one is rejected on "user" before any dependency is asked.
// It reports whether the user was valid.
func checkUserRequest(t *testing.T, d *fuzzDeps, user int64, err error) bool {
	t.Helper()
	if user > 0 {
		return true
	}
	expectFields(t, err, []string{"user"})
	if d.calls != 0 {
		t.Fatal("a rejected request reached a dependency")
	}
	return false
}

// checkItemRequest checks the validation of AddToCart and DeleteFromCart.
// It reports whether the request was valid.
func checkItemRequest(t *testing.T, d *fuzzDeps, user int64, sku, count uint32, err error) bool {
	t.Helper()
	var bad []string
	if user <= 0 {
		bad = append(bad, "user")
	}
	if sku == 0 {
		bad = append(bad, "sku")
	}
	if count == 0 || count > contractMaxCount {
		bad = append(bad, "count")
	}
	if len(bad) == 0 {
		var ve *validate.Error
		if errors.As(err, &ve) {
			t.Fatalf("valid request rejected: %v", err)
		}
		if err != nil && !errors.Is(err, cart.ErrCartFull) && !errors.Is(err, cart.ErrOutOfStock) {
			t.Fatalf("error %v maps to no code but Internal", err)
		}
		return true
	}
	expectFields(t, err, bad)
	if d.calls != 0 {
		t.Fatal("a rejected request reached a dependency")
	}
	return false
}

// expectFields fails unless err is a *validate.Error on fields[0] whose
// message names every field.
func expectFields(t *testing.T, err error, fields []string) {
	t.Helper()
	var ve *validate.Error
	if !errors.As(err, &ve) || ve.Field != fields[0] {
		t.Fatalf("error %v, want a validation error on %s", err, fields[0])
	}
	for _, f := range fields {
		if !strings.Contains(err.Error(), f+": ") {
			t.Fatalf("error %q does not name %s", err, f)
		}
	}
}
