package main

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"slices"
)

// row is one line of the tables: one client count and protocol.
type row struct {
	Clients  int    `json:"clients"`
	Protocol string `json:"protocol"`
	// PgbenchCreate and PgbenchSelect are shared by the protocols of one
	// client count: they were measured once.
	PgbenchCreate result `json:"pgbench_create_order"`
	PgbenchSelect result `json:"pgbench_stocks_select"`
	CreateOrder   result `json:"create_order"`
	Stocks        result `json:"stocks"`
	Noop          result `json:"noop"`
	// Outbox is measured in the create-order run.
	Outbox outboxResult `json:"outbox"`
	// LOMSMaxRSSMiB is the largest resident set seen during create-order.
	LOMSMaxRSSMiB float64 `json:"loms_max_rss_mib"`
	Ratios        ratios  `json:"ratios"`
	// Flash is the flash sale and the one-client latency, measured at the
	// largest client count only.
	Flash *flashRow `json:"flash_sale,omitempty"`
	// Rounds are the rounds a summary row was made of.
	Rounds []row `json:"rounds,omitempty"`
}

type result struct {
	RPS    float64 `json:"rps"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Errors int64   `json:"errors"`
	// CPU is what each part used during the run; Requests is how many
	// requests (or transactions) it was spent on, warm-up included.
	CPU      cpuShare `json:"cpu"`
	Requests float64  `json:"requests"`
}

// cpuPerRequest is CPU per request in microseconds, by part.
func (r result) cpuPerRequest() string { return r.CPU.perRequest(r.Requests) }

type outboxResult struct {
	// MaxOldestUnsentSeconds is the largest age of the oldest unsent event
	// seen during the run, sampled every 100 ms.
	MaxOldestUnsentSeconds float64 `json:"max_oldest_unsent_seconds"`
	// DrainedSeconds is the time from the end of the run until every event
	// of the run was in Kafka.
	DrainedSeconds float64 `json:"drained_seconds"`
	// Events counts the run's events found in Kafka, EventsWanted those
	// its orders made (two each).
	Events       int64 `json:"events"`
	EventsWanted int64 `json:"events_wanted"`
}

// ratios are the service's figures over their yardsticks, in one round.
type ratios struct {
	CreateOrderVsPgbench float64 `json:"create_order_vs_pgbench"`
	StocksVsNoop         float64 `json:"stocks_vs_noop"`
	StocksVsSelect       float64 `json:"stocks_vs_pgbench_select"`
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// measure runs every measurement at one client count, -rounds times over:
// the machine's speed drifts (shared cores, CPU steal), so each round's
// service figures are paired with that round's pgbench figures, and the
// medians are reported.
func (e *env) measure(ctx context.Context, clients int) ([]row, error) {
	perProtocol := map[string][]row{}
	for round := 1; round <= e.cfg.rounds; round++ {
		rows, err := e.round(ctx, round, clients)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			perProtocol[r.Protocol] = append(perProtocol[r.Protocol], r)
		}
	}
	var rows []row
	for _, p := range e.cfg.protocols {
		rows = append(rows, medianRow(perProtocol[p]))
	}
	return rows, nil
}

// round is one round at one client count: the pgbench yardsticks, then
// each protocol's runs; at the flash sale's client count, its runs too.
func (e *env) round(ctx context.Context, round, clients int) ([]row, error) {
	create, err := e.runPgbench(ctx, "create_order", clients)
	if err != nil {
		return nil, err
	}
	sel, err := e.runPgbench(ctx, "stocks", clients)
	if err != nil {
		return nil, err
	}
	flash := clients == e.cfg.flashClients()
	var oneSKU result
	if flash {
		if oneSKU, err = e.runPgbench(ctx, "flash_sale", clients); err != nil {
			return nil, err
		}
	}
	var rows []row
	for _, p := range e.cfg.protocols {
		r, err := e.protocolRow(ctx, p, clients, create, sel)
		if err != nil {
			return nil, err
		}
		log.Printf("round %d, %d clients, %s: CreateOrder %.0f/s (pgbench %.0f), Stocks %.0f/s (pgbench %.0f), noop %.0f/s",
			round, clients, p, r.CreateOrder.RPS, create.RPS, r.Stocks.RPS, sel.RPS, r.Noop.RPS)
		if flash {
			if r.Flash, err = e.flashSale(ctx, p, clients, oneSKU, r.CreateOrder); err != nil {
				return nil, err
			}
			one := fmt.Sprintf("%.2f ms", r.Flash.OneClient.P50)
			if e.baseline != nil {
				one += fmt.Sprintf(" (baseline LOMS %.2f ms)", r.Flash.BaselineOneClient.P50)
			}
			log.Printf("round %d, %d clients, %s: flash sale %.0f/s (pgbench one sku %.0f), one client p50 %s",
				round, clients, p, r.Flash.FlashSale.RPS, oneSKU.RPS, one)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// protocolRow runs create-order, stocks and noop over one protocol.
func (e *env) protocolRow(ctx context.Context, protocol string, clients int, create, sel result) (row, error) {
	r := row{Clients: clients, Protocol: protocol, PgbenchCreate: create, PgbenchSelect: sel}
	orders, err := e.createOrders(ctx, spreadOrders(protocol, clients))
	if err != nil {
		return r, err
	}
	r.CreateOrder, r.Outbox, r.LOMSMaxRSSMiB = orders.result, orders.outbox, orders.maxRSS
	if r.Stocks, err = e.load(ctx, loadRun{protocol: protocol, scenario: "stocks", clients: clients}); err != nil {
		return r, err
	}
	if r.Noop, err = e.load(ctx, loadRun{protocol: protocol, scenario: "noop", clients: clients}); err != nil {
		return r, err
	}
	r.Ratios = ratios{
		CreateOrderVsPgbench: ratio(r.CreateOrder.RPS, create.RPS),
		StocksVsNoop:         ratio(r.Stocks.RPS, r.Noop.RPS),
		StocksVsSelect:       ratio(r.Stocks.RPS, sel.RPS),
	}
	return r, nil
}

// medianRow summarizes rounds: the median ratios; for each measurement the
// round with the median rate (its latency and CPU with it) and the errors
// of all; the outbox's and memory's worst.
func medianRow(rounds []row) row {
	m := row{
		Clients: rounds[0].Clients, Protocol: rounds[0].Protocol,
		PgbenchCreate: medianResult(rounds, func(r row) result { return r.PgbenchCreate }),
		PgbenchSelect: medianResult(rounds, func(r row) result { return r.PgbenchSelect }),
		CreateOrder:   medianResult(rounds, func(r row) result { return r.CreateOrder }),
		Stocks:        medianResult(rounds, func(r row) result { return r.Stocks }),
		Noop:          medianResult(rounds, func(r row) result { return r.Noop }),
		Ratios: ratios{
			CreateOrderVsPgbench: median(rounds, func(r row) float64 { return r.Ratios.CreateOrderVsPgbench }),
			StocksVsNoop:         median(rounds, func(r row) float64 { return r.Ratios.StocksVsNoop }),
			StocksVsSelect:       median(rounds, func(r row) float64 { return r.Ratios.StocksVsSelect }),
		},
		Flash:  medianFlash(rounds),
		Rounds: rounds,
	}
	for _, r := range rounds {
		m.Outbox.MaxOldestUnsentSeconds = max(m.Outbox.MaxOldestUnsentSeconds, r.Outbox.MaxOldestUnsentSeconds)
		m.Outbox.DrainedSeconds = max(m.Outbox.DrainedSeconds, r.Outbox.DrainedSeconds)
		m.Outbox.Events += r.Outbox.Events
		m.Outbox.EventsWanted += r.Outbox.EventsWanted
		m.LOMSMaxRSSMiB = max(m.LOMSMaxRSSMiB, r.LOMSMaxRSSMiB)
	}
	return m
}

// medianResult is the result of the round with the median rate, with the
// errors of every round.
func medianResult[T any](rounds []T, get func(T) result) result {
	rs := make([]result, len(rounds))
	var errs int64
	for i, r := range rounds {
		rs[i] = get(r)
		errs += rs[i].Errors
	}
	slices.SortFunc(rs, func(a, b result) int { return cmp.Compare(a.RPS, b.RPS) })
	// The lower middle of an even count: no rounding in the service's
	// favour.
	m := rs[(len(rs)-1)/2]
	m.Errors = errs
	return m
}

// median is the lower middle of the rounds' figures.
func median[T any](rounds []T, get func(T) float64) float64 {
	v := make([]float64, len(rounds))
	for i, r := range rounds {
		v[i] = get(r)
	}
	slices.Sort(v)
	return v[(len(v)-1)/2]
}
