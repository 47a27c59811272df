package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// target is one of the performance issue's targets, checked on a row.
type target struct {
	name string
	ok   func(r row) (float64, float64, bool) // measured, wanted
}

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

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func renderReport(cfg config, settings string, rows []row, peakRSS float64) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# LOMS against its yardsticks\n\n%s on %s (%d CPUs, %s). %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), cpuModel(), settings)
	fmt.Fprintf(&b, "Each run: %s measured after %s of warm-up; %d rounds of every run, each round's service figures paired with "+
		"that round's pgbench; rates and p99 are those of the median round, ratios the median of the rounds' ratios; "+
		"%d skus in 2 warehouses; LOMS binary %s.\n\n",
		cfg.duration, cfg.warmup, cfg.rounds, cfg.skus, cfg.lomsBin)

	b.WriteString("## Writes: CreateOrder against pgbench running the same transaction\n\n")
	b.WriteString("| clients | protocol | pgbench tps | CreateOrder RPS | ratio | p99 ms pgbench / CreateOrder | errors | oldest unsent event, max | all events in Kafka after | events (wanted) | LOMS RSS max |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f | **%.2f** | %.1f / %.1f | %d | %.2f s | %.2f s | %d (%d) | %.0f MiB |\n",
			r.Clients, r.Protocol, r.PgbenchCreate.RPS, r.CreateOrder.RPS, r.Ratios.CreateOrderVsPgbench,
			r.PgbenchCreate.P99, r.CreateOrder.P99, r.CreateOrder.Errors, r.Outbox.MaxOldestUnsentSeconds,
			r.Outbox.DrainedSeconds, r.Outbox.Events, r.Outbox.EventsWanted, r.LOMSMaxRSSMiB)
	}
	b.WriteString("\n## Reads: Stocks against pgbench running the same select, and a no-op RPC\n\n")
	b.WriteString("| clients | protocol | pgbench select tps | Stocks RPS | noop RPS | Stocks / noop | Stocks / pgbench | p99 ms pgbench / Stocks / noop | errors |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %.0f | %.0f | %.0f | **%.2f** | **%.2f** | %.2f / %.2f / %.2f | %d |\n",
			r.Clients, r.Protocol, r.PgbenchSelect.RPS, r.Stocks.RPS, r.Noop.RPS, r.Ratios.StocksVsNoop,
			r.Ratios.StocksVsSelect, r.PgbenchSelect.P99, r.Stocks.P99, r.Noop.P99,
			r.Stocks.Errors+r.Noop.Errors)
	}
	b.WriteString("\n## Where the CPU goes: microseconds per request, Postgres / LOMS / load generator / harness (Kafka)\n\n")
	b.WriteString("| clients | protocol | pgbench create | CreateOrder | pgbench select | Stocks | noop |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s |\n", r.Clients, r.Protocol, r.PgbenchCreate.cpuPerRequest(),
			r.CreateOrder.cpuPerRequest(), r.PgbenchSelect.cpuPerRequest(), r.Stocks.cpuPerRequest(), r.Noop.cpuPerRequest())
	}
	b.WriteString("\nThe machine has " + strconv.Itoa(runtime.NumCPU()) + " CPUs: at N requests/s, a part using U µs per request keeps U·N/10⁶ of them busy.\n")
	fmt.Fprintf(&b, "\nLOMS's peak resident memory over the whole run (VmHWM): %.0f MiB.\n", peakRSS)

	b.WriteString("\n## Targets (16 clients, gRPC)\n\n")
	for _, r := range rows {
		if r.Clients != 16 || r.Protocol != "grpc" {
			continue
		}
		for _, t := range targets {
			v, want, ok := t.ok(r)
			mark := "met"
			if !ok {
				mark = "MISSED"
			}
			fmt.Fprintf(&b, "- %s: %.2f (want %.2f): %s\n", t.name, v, want, mark)
		}
	}
	for _, r := range rows {
		if r.Clients == 64 && r.Protocol == "grpc" {
			mark := "met"
			if r.LOMSMaxRSSMiB >= 100 {
				mark = "MISSED"
			}
			fmt.Fprintf(&b, "- LOMS RSS under 64-client create-order < 100 MiB: %.0f MiB: %s\n", r.LOMSMaxRSSMiB, mark)
		}
	}
	return b.String()
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return "unknown CPU"
}
