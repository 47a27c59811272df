package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	lomsv1 "github.com/minizon/minizon/gen/minizon/loms/v1"
	"github.com/minizon/minizon/internal/pgtest"
)

// TestDevRunsTheWholeSystem is the README's promise: `minizon dev` comes up
// on embedded Postgres and Kafka with seeded stock, a plain JSON client can
// create, list, pay and cancel orders and see Stocks change, the events reach
// the broker, and Ctrl+C stops it cleanly.
func TestDevRunsTheWholeSystem(t *testing.T) {
	// The embedded Postgres runs as the postgres user when we are root: it
	// must be able to reach its data directory.
	dir := pgtest.ReachableTempDir(t)
	for k, v := range map[string]string{
		"MINIZON_ADDR": "127.0.0.1:0", "MINIZON_DATA_DIR": dir, "MINIZON_LOG_LEVEL": "info",
		// Short enough to see an unpaid order cancelled, long enough for
		// the others to be paid in time on a busy machine.
		"LOMS_PAYMENT_TIMEOUT": "10s",
		"DATABASE_URL":         "", "KAFKA_BROKERS": "", "MINIZON_KAFKA_PORT": "", "NOTIFY_WEBHOOK_URL": "",
		"LOMS_ADDR": "", "PRODUCT_ADDR": "", "PRODUCT_TOKEN": "", "PRODUCT_TOKENS": "",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logLines{}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runLogging(ctx, []string{"dev"}, pw, logs)
		pw.Close()
	}()
	base, brokers := readBanner(t, pr, done)

	lomsURL := base + "/minizon.loms.v1.LomsService/"
	const sku = 773587830
	before := available(t, lomsURL, sku)
	if len(before) != 3 {
		t.Fatalf("sample sku %d in %d warehouses, want 3", sku, len(before))
	}
	var created struct {
		OrderID string `json:"orderId"`
		Status  string
	}
	call(t, lomsURL+"CreateOrder", `{"user": 5, "items": [{"sku": 773587830, "count": 2}]}`, &created)
	if created.Status != "ORDER_STATUS_AWAITING_PAYMENT" {
		t.Fatalf("created %+v", created)
	}
	if got := available(t, lomsURL, sku); total(before)-total(got) != 2 {
		t.Fatalf("stocks %v -> %v, want 2 reserved", before, got)
	}
	var listed struct{ Status, User string }
	call(t, lomsURL+"ListOrder", `{"orderId": `+created.OrderID+`}`, &listed)
	if listed.User != "5" {
		t.Fatalf("listed %+v", listed)
	}
	call(t, lomsURL+"OrderPayed", `{"orderId": `+created.OrderID+`}`, nil)
	call(t, lomsURL+"ListOrder", `{"orderId": `+created.OrderID+`}`, &listed)
	if listed.Status != "ORDER_STATUS_PAYED" {
		t.Fatalf("after payment: %+v", listed)
	}
	var second struct {
		OrderID string `json:"orderId"`
	}
	call(t, lomsURL+"CreateOrder", `{"user": 5, "items": [{"sku": 773587830, "count": 1}]}`, &second)
	call(t, lomsURL+"CancelOrder", `{"orderId": `+second.OrderID+`}`, nil)
	if got := available(t, lomsURL, sku); total(before)-total(got) != 2 {
		t.Fatalf("after pay and cancel: %v -> %v, want 2 written off", before, got)
	}

	// Every status change reached the embedded broker: 3 + 3 events.
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("loms.order-events"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	pollCtx, stopPoll := context.WithTimeout(ctx, 60*time.Second)
	defer stopPoll()
	var events []*lomsv1.OrderEvent
	for len(events) < 6 && pollCtx.Err() == nil {
		client.PollFetches(pollCtx).EachRecord(func(r *kgo.Record) {
			e := &lomsv1.OrderEvent{}
			if err := proto.Unmarshal(r.Value, e); err != nil {
				t.Errorf("undecodable event: %v", err)
			}
			events = append(events, e)
		})
	}
	if len(events) != 6 {
		t.Fatalf("%d events in Kafka, want 6", len(events))
	}

	// The catalog is seeded and Checkout buys through LOMS on the same port.
	productURL := base + "/route256.product.ProductService/"
	var product struct {
		Name  string
		Price int
	}
	call(t, productURL+"GetProduct", `{"token": "testtoken", "sku": 773587830}`, &product)
	if product.Name == "" || product.Price == 0 {
		t.Fatalf("sample product %+v", product)
	}
	checkoutURL := base + "/minizon.checkout.v1.CheckoutService/"
	call(t, checkoutURL+"AddToCart", `{"user": 6, "sku": 773587830, "count": 3}`, nil)
	var listing struct {
		Items []struct {
			Sku, Count int
			Name       string
			Price      int
		}
		TotalPrice string
	}
	call(t, checkoutURL+"ListCart", `{"user": 6}`, &listing)
	if len(listing.Items) != 1 || listing.Items[0].Name != product.Name || listing.TotalPrice != strconv.Itoa(3*product.Price) {
		t.Fatalf("cart %+v, product %+v", listing, product)
	}
	var purchase struct {
		OrderID string `json:"orderId"`
		Status  string
	}
	call(t, checkoutURL+"Purchase", `{"user": 6}`, &purchase)
	if purchase.Status != "ORDER_STATUS_AWAITING_PAYMENT" {
		t.Fatalf("purchase %+v", purchase)
	}
	listing.Items = nil
	call(t, checkoutURL+"ListCart", `{"user": 6}`, &listing)
	if len(listing.Items) != 0 {
		t.Fatalf("cart after purchase: %+v", listing)
	}
	call(t, lomsURL+"OrderPayed", `{"orderId": `+purchase.OrderID+`}`, nil)
	paid := time.Now()
	var unpaid struct {
		OrderID string `json:"orderId"`
	}
	call(t, lomsURL+"CreateOrder", `{"user": 7, "items": [{"sku": 773587830, "count": 1}]}`, &unpaid)

	// Each status change is one notification line, in order per order; the
	// unpaid order is cancelled by LOMS when its payment window closes.
	want := map[string][]string{
		created.OrderID:  {"new", "awaiting_payment", "payed"},
		second.OrderID:   {"new", "awaiting_payment", "cancelled"},
		purchase.OrderID: {"new", "awaiting_payment", "payed"},
		unpaid.OrderID:   {"new", "awaiting_payment", "cancelled"},
	}
	deadline := time.Now().Add(60 * time.Second)
	var got map[string][]string
	for {
		got = logs.notifications(t)
		if len(got[purchase.OrderID]) == 3 && !paid.IsZero() {
			t.Logf("the purchase's payment was notified %v after OrderPayed returned", logs.seen(purchase.OrderID, "payed").Sub(paid))
			paid = time.Time{}
		}
		if len(got[unpaid.OrderID]) == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for id, statuses := range want {
		if strings.Join(got[id], ",") != strings.Join(statuses, ",") {
			t.Errorf("order %s: notification lines for %v, want %v", id, got[id], statuses)
		}
	}

	// Operators see RPCs by procedure and code, the outbox backlog, the
	// consumer's lag and the notifications sent on /metrics.
	if res, err := http.Post(lomsURL+"OrderPayed", "application/json", strings.NewReader(`{"orderId": 999999}`)); err != nil {
		t.Fatal(err)
	} else {
		res.Body.Close()
	}
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`minizon_rpc_server_requests_total{code="ok",procedure="/minizon.checkout.v1.CheckoutService/Purchase"} 1`,
		`minizon_rpc_server_requests_total{code="not_found",procedure="/minizon.loms.v1.LomsService/OrderPayed"} 1`,
		`minizon_rpc_server_duration_seconds_count{code="ok",procedure="/minizon.loms.v1.LomsService/CreateOrder"}`,
		"minizon_outbox_unsent_events ",
		"minizon_outbox_oldest_unsent_age_seconds ",
		`minizon_consumer_lag{partition="`,
		`minizon_notifications_total{outcome="sent",status="payed"} 2`,
		`minizon_notifications_total{outcome="sent",status="cancelled"} 2`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// The storefront is the demo: the printed address serves it.
	page, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != http.StatusOK || !strings.Contains(string(html), `<div id="app">`) {
		t.Errorf("GET / = %d %.200q, want the storefront page", page.StatusCode, html)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dev stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("dev did not stop after cancellation")
	}
}

func readBanner(t *testing.T, r io.Reader, done <-chan error) (base string, brokers []string) {
	t.Helper()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	addrRe := regexp.MustCompile(`running at (http://\S+)`)
	brokersRe := regexp.MustCompile(`Kafka brokers: \[(.*)\]`)
	timeout := time.After(2 * time.Minute)
	for base == "" || brokers == nil {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev exited before printing its address: %v", <-done)
			}
			if m := addrRe.FindStringSubmatch(l); m != nil {
				base = m[1]
			}
			if m := brokersRe.FindStringSubmatch(l); m != nil {
				brokers = strings.Fields(m[1])
			}
		case <-timeout:
			t.Fatal("no banner within 2 minutes")
		}
	}
	go func() {
		for range lines {
		}
	}()
	return base, brokers
}

func call(t *testing.T, url, body string, out any) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %s", url, body, res.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
}

func available(t *testing.T, lomsURL string, sku int) map[string]int {
	t.Helper()
	var res struct {
		Stocks []struct {
			WarehouseID string `json:"warehouseId"`
			Count       string `json:"count"`
		}
	}
	call(t, lomsURL+"Stocks", `{"sku": `+strconv.Itoa(sku)+`}`, &res)
	m := map[string]int{}
	for _, s := range res.Stocks {
		n, err := strconv.Atoi(s.Count)
		if err != nil {
			t.Fatalf("count %q: %v", s.Count, err)
		}
		m[s.WarehouseID] = n
	}
	return m
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// logLines collects the JSON log lines of a running dev, noting when each
// arrived.
type logLines struct {
	mu    sync.Mutex
	buf   []byte
	lines []string
	at    []time.Time
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.lines = append(l.lines, string(l.buf[:i]))
		l.at = append(l.at, time.Now())
		l.buf = l.buf[i+1:]
	}
}

type notificationLine struct {
	Msg     string `json:"msg"`
	OrderID int64  `json:"order_id"`
	Status  string `json:"status"`
}

// notifications returns the statuses of the "notification sent" lines per
// order id, in the order logged.
func (l *logLines) notifications(t *testing.T) map[string][]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string][]string{}
	for _, line := range l.lines {
		var n notificationLine
		if err := json.Unmarshal([]byte(line), &n); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if n.Msg == "notification sent" {
			id := strconv.FormatInt(n.OrderID, 10)
			out[id] = append(out[id], n.Status)
		}
	}
	return out
}

// seen is when the notification of an order's status was logged.
func (l *logLines) seen(orderID, status string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, line := range l.lines {
		var n notificationLine
		if json.Unmarshal([]byte(line), &n) == nil && n.Msg == "notification sent" &&
			strconv.FormatInt(n.OrderID, 10) == orderID && n.Status == status {
			return l.at[i]
		}
	}
	return time.Time{}
}
