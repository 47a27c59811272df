package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// flashRow is a flash sale at one client count and protocol, and
// CreateOrder's latency with one client: the yardsticks for
// reserving orders in group batches.
type flashRow struct {
	// PgbenchOneSKU is flash_sale.sql, the CreateOrder transaction on the
	// hot sku: the rate one stock row's lock allows. It is shared by the
	// protocols of a round.
	PgbenchOneSKU result `json:"pgbench_one_sku"`
	// FlashSale is `minizon bench -scenario flash-sale` on the hot sku.
	FlashSale result `json:"flash_sale"`
	// FailedOrders counts the flash sale's orders, warm-up included, that
	// LOMS failed: the hot sku cannot run out, so each is a fault.
	FailedOrders int64 `json:"failed_orders"`
	// OneClient is create-order with one client, the one-order batches a
	// quiet shop sees: batching must not make them slower.
	OneClient result `json:"one_client_create_order"`
	// BaselineOneClient is the same run against the baseline LOMS
	// (-baseline-bin), right after OneClient: the machine's speed drifts
	// from minute to minute, so only figures of the same rounds compare.
	BaselineOneClient result      `json:"baseline_one_client_create_order,omitzero"`
	Ratios            flashRatios `json:"ratios"`
}

// flashRatios are the flash sale's rate over its yardsticks, in one round.
type flashRatios struct {
	// VsPgbench is over pgbench's one-sku tps, the serialized rate.
	VsPgbench float64 `json:"flash_sale_vs_pgbench_one_sku"`
	// VsSpread is over LOMS's own create-order rate on spread skus at the
	// same client count and protocol.
	VsSpread float64 `json:"flash_sale_vs_create_order"`
	// OneClientP50VsBaseline is the one-client p50 over the baseline
	// LOMS's; 0 without one.
	OneClientP50VsBaseline float64 `json:"one_client_p50_vs_baseline,omitzero"`
}

// ratios are the round's flash-sale ratios; spread is LOMS's create-order
// of the same round. A ratio over a figure not measured is 0.
func (f *flashRow) ratios(spread result) flashRatios {
	return flashRatios{
		VsPgbench:              ratio(f.FlashSale.RPS, f.PgbenchOneSKU.RPS),
		VsSpread:               ratio(f.FlashSale.RPS, spread.RPS),
		OneClientP50VsBaseline: ratio(f.OneClient.P50, f.BaselineOneClient.P50),
	}
}

// flashSale runs the flash sale and the one-client create-order over one
// protocol, the latter against the baseline LOMS too when there is one;
// oneSKU is pgbench's flash sale and spread LOMS's create-order of
// the same round.
func (e *env) flashSale(ctx context.Context, protocol string, clients int, oneSKU, spread result) (*flashRow, error) {
	f := &flashRow{PgbenchOneSKU: oneSKU}
	sale, err := e.createOrders(ctx, loadRun{protocol: protocol, scenario: "flash-sale", clients: clients,
		skus: strconv.Itoa(e.cfg.hotSKU())})
	if err != nil {
		return nil, err
	}
	f.FlashSale, f.FailedOrders = sale.result, sale.failed
	one, err := e.createOrders(ctx, spreadOrders(protocol, 1))
	if err != nil {
		return nil, err
	}
	f.OneClient = one.result
	if e.baseline != nil {
		run := spreadOrders(protocol, 1)
		run.addr = e.baseline.addr
		base, err := e.createOrders(ctx, run)
		if err != nil {
			return nil, fmt.Errorf("baseline LOMS: %w", err)
		}
		f.BaselineOneClient = base.result
	}
	f.Ratios = f.ratios(spread)
	return f, nil
}

// medianFlash summarizes the rounds' flash sales as medianRow does the
// rest; nil when the rounds had none.
func medianFlash(rounds []row) *flashRow {
	if rounds[0].Flash == nil {
		return nil
	}
	fs := make([]*flashRow, len(rounds))
	m := &flashRow{}
	for i, r := range rounds {
		fs[i] = r.Flash
		m.FailedOrders += r.Flash.FailedOrders
	}
	m.PgbenchOneSKU = medianResult(fs, func(f *flashRow) result { return f.PgbenchOneSKU })
	m.FlashSale = medianResult(fs, func(f *flashRow) result { return f.FlashSale })
	m.OneClient = medianResult(fs, func(f *flashRow) result { return f.OneClient })
	m.BaselineOneClient = medianResult(fs, func(f *flashRow) result { return f.BaselineOneClient })
	m.Ratios = flashRatios{
		VsPgbench: median(fs, func(f *flashRow) float64 { return f.Ratios.VsPgbench }),
		VsSpread:  median(fs, func(f *flashRow) float64 { return f.Ratios.VsSpread }),
		// Of the rounds' ratios, each of two runs back to back, not of
		// the two medians, which may come from different rounds.
		OneClientP50VsBaseline: median(fs, func(f *flashRow) float64 { return f.Ratios.OneClientP50VsBaseline }),
	}
	return m
}

// stockCheck is the oversell check of the whole database after the runs.
type stockCheck struct {
	// Rows and SKUs are the stock rows and skus checked.
	Rows, SKUs int64
	// Bad counts stock rows that reserve more than they hold or other
	// than their reservations add up to, and skus whose reserved units
	// differ from the units of their orders awaiting payment.
	Bad int64
	// Example describes the first bad row or sku.
	Example string
}

func (s stockCheck) oversold() bool { return s.Bad > 0 }

// Every order in the database awaits payment or failed (the harness
// settles none and the payment window outlasts the run), so each sku's
// reserved units must be exactly its awaiting orders' units: a lost update
// of a stock row shows as a row that reserves less than its reservations,
// an order sold without a reservation as a sku that reserves less than its
// orders.
const (
	badStockRows = `SELECT s.sku, s.warehouse_id, s.total, s.reserved, COALESCE(r.units, 0)
		FROM stocks s
		LEFT JOIN (SELECT sku, warehouse_id, sum(count)::bigint AS units FROM reservations GROUP BY sku, warehouse_id) r
			USING (sku, warehouse_id)
		WHERE s.reserved > s.total OR s.reserved <> COALESCE(r.units, 0)
		ORDER BY s.sku, s.warehouse_id`
	badSKUs = `SELECT sku, COALESCE(h.reserved, 0), COALESCE(o.units, 0)
		FROM (SELECT sku, sum(reserved)::bigint AS reserved FROM stocks GROUP BY sku) h
		FULL JOIN (SELECT i.sku, sum(i.count)::bigint AS units FROM order_items i
			JOIN orders o ON o.id = i.order_id WHERE o.status = 'awaiting_payment' GROUP BY i.sku) o
			USING (sku)
		WHERE COALESCE(h.reserved, 0) <> COALESCE(o.units, 0)
		ORDER BY sku`
)

// checkStock looks for oversell in every stock row and sku.
func (e *env) checkStock(ctx context.Context) (stockCheck, error) {
	var c stockCheck
	if err := e.pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT sku) FROM stocks").Scan(&c.Rows, &c.SKUs); err != nil {
		return c, fmt.Errorf("count stock rows: %w", err)
	}
	// A failed query's error comes out of ForEachRow.
	var sku, warehouse, total, reserved, units int64
	rows, _ := e.pool.Query(ctx, badStockRows)
	_, err := pgx.ForEachRow(rows, []any{&sku, &warehouse, &total, &reserved, &units}, func() error {
		c.note(fmt.Sprintf("sku %d in warehouse %d: total %d, reserved %d, reservations %d", sku, warehouse, total, reserved, units))
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("check stock rows: %w", err)
	}
	rows, _ = e.pool.Query(ctx, badSKUs)
	_, err = pgx.ForEachRow(rows, []any{&sku, &reserved, &units}, func() error {
		c.note(fmt.Sprintf("sku %d: reserved %d, units of orders awaiting payment %d", sku, reserved, units))
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("check skus: %w", err)
	}
	return c, nil
}

func (s *stockCheck) note(what string) {
	if s.Bad == 0 {
		s.Example = what
	}
	s.Bad++
}
