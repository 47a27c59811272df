package main

import (
	"fmt"
	"slices"
	"strings"
)

// target is one of the performance issues' targets, checked on a row.
type target struct {
	name string
	ok   func(r row) (float64, float64, bool) // measured, wanted
}

// targets are the first performance issue's, on the 16-client gRPC row.
var targets = []target{
	{"CreateOrder RPS ≥ 0.8 × pgbench tps", func(r row) (float64, float64, bool) {
		v := r.Ratios.CreateOrderVsPgbench
		return v, 0.8, v >= 0.8
	}},
	{"Stocks RPS ≥ 0.6 × noop RPS", func(r row) (float64, float64, bool) {
		v := r.Ratios.StocksVsNoop
		return v, 0.6, v >= 0.6
	}},
	{"Stocks RPS ≥ 0.3 × pgbench select tps", func(r row) (float64, float64, bool) {
		v := r.Ratios.StocksVsSelect
		return v, 0.3, v >= 0.3
	}},
	{"oldest unsent event < 1 s", func(r row) (float64, float64, bool) {
		return r.Outbox.MaxOldestUnsentSeconds, 1, r.Outbox.MaxOldestUnsentSeconds < 1
	}},
	{"every event in Kafka < 2 s after the last order", func(r row) (float64, float64, bool) {
		// At least: delivery is at least once, and an order of an earlier
		// run that committed late has its events counted here.
		return r.Outbox.DrainedSeconds, 2, r.Outbox.DrainedSeconds < 2 && r.Outbox.Events >= r.Outbox.EventsWanted
	}},
}

// flashTargets are the flash-sale issue's (#17), on the flash sale's row:
// rows without one are never checked.
var flashTargets = []target{
	{"flash-sale RPS ≥ 0.8 × spread CreateOrder RPS", func(r row) (float64, float64, bool) {
		v := r.Flash.Ratios.VsSpread
		return v, 0.8, v >= 0.8
	}},
	{"flash-sale RPS ≥ 3 × pgbench one-sku tps", func(r row) (float64, float64, bool) {
		v := r.Flash.Ratios.VsPgbench
		return v, 3, v >= 3
	}},
	{"moonshot: flash-sale RPS ≥ 5 × pgbench one-sku tps", func(r row) (float64, float64, bool) {
		v := r.Flash.Ratios.VsPgbench
		return v, 5, v >= 5
	}},
	{"flash-sale p99 < 250 ms", func(r row) (float64, float64, bool) {
		return r.Flash.FlashSale.P99, 250, r.Flash.FlashSale.P99 < 250
	}},
	// Not the issue's own: the hot sku cannot sell out, so a failed order
	// is one the rate must not count.
	{"flash-sale orders failed with stock left = 0", func(r row) (float64, float64, bool) {
		return float64(r.Flash.FailedOrders), 0, r.Flash.FailedOrders == 0
	}},
}

func writeTargets(b *strings.Builder, cfg config, rows []row, stock stockCheck) {
	b.WriteString("\n## Targets\n\n")
	for _, r := range rows {
		if r.Clients == 16 && r.Protocol == "grpc" {
			checkTargets(b, "16 clients, grpc: ", targets, r)
		}
	}
	for _, r := range rows {
		if r.Clients == 64 && r.Protocol == "grpc" {
			fmt.Fprintf(b, "- 64 clients, grpc: LOMS RSS under create-order < 100 MiB: %.0f MiB: %s\n", r.LOMSMaxRSSMiB, mark(r.LOMSMaxRSSMiB < 100))
		}
	}
	protocol := targetProtocol(cfg)
	for _, r := range rows {
		if r.Flash == nil || r.Protocol != protocol {
			continue
		}
		checkTargets(b, fmt.Sprintf("%d clients, %s: ", r.Clients, protocol), flashTargets, r)
		oneClientTarget(b, cfg, protocol, r.Flash)
	}
	fmt.Fprintf(b, "- oversell: %d (stock rows reserving more than they hold or than their reservations, "+
		"skus reserving other than their orders awaiting payment; %d rows and %d skus checked): %s\n",
		stock.Bad, stock.Rows, stock.SKUs, mark(!stock.oversold()))
	if stock.oversold() {
		fmt.Fprintf(b, "  first: %s\n", stock.Example)
	}
}

func checkTargets(b *strings.Builder, prefix string, ts []target, r row) {
	for _, t := range ts {
		v, want, ok := t.ok(r)
		fmt.Fprintf(b, "- %s%s: %.2f (want %.2f): %s\n", prefix, t.name, v, want, mark(ok))
	}
}

// noWorse is the largest one-client p50 over the baseline's that counts as
// the "no worse than before the change": 5% to spare for the noise
// that remains between two runs of the same round.
const noWorse = 1.05

// oneClientTarget checks a lone order's latency against the baseline LOMS's
// in the same rounds.
func oneClientTarget(b *strings.Builder, cfg config, protocol string, f *flashRow) {
	one := f.OneClient
	if cfg.baselineBin == "" {
		fmt.Fprintf(b, "- one client, %s: CreateOrder p50 %.2f ms (p99 %.2f ms); no baseline was measured: "+
			"pass -baseline-bin OLD, a minizon binary built before the change\n", protocol, one.P50, one.P99)
		return
	}
	// 0 is a p50 missing on either side, not a fast order.
	v := f.Ratios.OneClientP50VsBaseline
	fmt.Fprintf(b, "- one client, %s: CreateOrder p50 %.2f ms against baseline %.2f ms in the same rounds: ratio %.2f "+
		"(≤ %.2f counts as no worse): %s\n", protocol, one.P50, f.BaselineOneClient.P50, v, noWorse, mark(v > 0 && v <= noWorse))
}

// targetProtocol is the protocol the flash sale's targets are checked on:
// gRPC, unless it was not measured.
func targetProtocol(cfg config) string {
	if slices.Contains(cfg.protocols, "grpc") {
		return "grpc"
	}
	return cfg.protocols[0]
}

func mark(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}
