package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func renderReport(cfg config, settings string, rows []row, peakRSS float64, stock stockCheck) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# LOMS against its yardsticks\n\n%s on %s (%d CPUs, %s). %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, runtime.NumCPU(), cpuModel(), settings)
	fmt.Fprintf(&b, "Each run: %s measured after %s of warm-up; %d rounds of every run, each round's service figures paired with "+
		"that round's pgbench; rates and latencies are those of the median round, ratios the median of the rounds' ratios; "+
		"%d skus in 2 warehouses, and sku %d for the flash sale; LOMS binary %s%s.\n\n",
		cfg.duration, cfg.warmup, cfg.rounds, cfg.skus, cfg.hotSKU(), cfg.lomsBin, baselineNote(cfg))
	writesTable(&b, rows)
	readsTable(&b, rows)
	flashTable(&b, cfg, rows)
	oneClientTable(&b, cfg, rows)
	cpuTable(&b, rows)
	fmt.Fprintf(&b, "\nLOMS's peak resident memory over the whole run (VmHWM): %.0f MiB.\n", peakRSS)
	writeTargets(&b, cfg, rows, stock)
	return b.String()
}

func writesTable(b *strings.Builder, rows []row) {
	b.WriteString("## Writes: CreateOrder against pgbench running the same transaction\n\n")
	b.WriteString("| clients | protocol | pgbench tps | CreateOrder RPS | ratio | p99 ms pgbench / CreateOrder | errors | oldest unsent event, max | all events in Kafka after | events (wanted) | LOMS RSS max |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %d | %s | %.0f | %.0f | **%.2f** | %.1f / %.1f | %d | %.2f s | %.2f s | %d (%d) | %.0f MiB |\n",
			r.Clients, r.Protocol, r.PgbenchCreate.RPS, r.CreateOrder.RPS, r.Ratios.CreateOrderVsPgbench,
			r.PgbenchCreate.P99, r.CreateOrder.P99, r.CreateOrder.Errors, r.Outbox.MaxOldestUnsentSeconds,
			r.Outbox.DrainedSeconds, r.Outbox.Events, r.Outbox.EventsWanted, r.LOMSMaxRSSMiB)
	}
}

func readsTable(b *strings.Builder, rows []row) {
	b.WriteString("\n## Reads: Stocks against pgbench running the same select, and a no-op RPC\n\n")
	b.WriteString("| clients | protocol | pgbench select tps | Stocks RPS | noop RPS | Stocks / noop | Stocks / pgbench | p99 ms pgbench / Stocks / noop | errors |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %d | %s | %.0f | %.0f | %.0f | **%.2f** | **%.2f** | %.2f / %.2f / %.2f | %d |\n",
			r.Clients, r.Protocol, r.PgbenchSelect.RPS, r.Stocks.RPS, r.Noop.RPS, r.Ratios.StocksVsNoop,
			r.Ratios.StocksVsSelect, r.PgbenchSelect.P99, r.Stocks.P99, r.Noop.P99,
			r.Stocks.Errors+r.Noop.Errors)
	}
}

func flashTable(b *strings.Builder, cfg config, rows []row) {
	fmt.Fprintf(b, "\n## Flash sale: every order 1 unit of sku %d, against pgbench's one-sku transaction and LOMS's own spread CreateOrder\n\n",
		cfg.hotSKU())
	b.WriteString("| clients | protocol | pgbench one-sku tps | flash-sale RPS | flash / pgbench one-sku | spread CreateOrder RPS | flash / spread | p99 ms pgbench / flash | errors | orders failed |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if f := r.Flash; f != nil {
			fmt.Fprintf(b, "| %d | %s | %.0f | %.0f | **%.2f** | %.0f | **%.2f** | %.1f / %.1f | %d | %d |\n",
				r.Clients, r.Protocol, f.PgbenchOneSKU.RPS, f.FlashSale.RPS, f.Ratios.VsPgbench, r.CreateOrder.RPS,
				f.Ratios.VsSpread, f.PgbenchOneSKU.P99, f.FlashSale.P99, f.FlashSale.Errors, f.FailedOrders)
		}
	}
}

// baselineNote names the baseline LOMS's binary, if any, for the header.
func baselineNote(cfg config) string {
	if cfg.baselineBin == "" {
		return ""
	}
	return ", baseline LOMS binary " + cfg.baselineBin
}

func oneClientTable(b *strings.Builder, cfg config, rows []row) {
	b.WriteString("\n## One client: CreateOrder of 3 spread skus, one call at a time\n\n")
	b.WriteString("| protocol | RPS | p50 ms | p99 ms | errors | baseline RPS | baseline p50 ms | baseline p99 ms | baseline errors | p50 / baseline |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		f := r.Flash
		if f == nil {
			continue
		}
		was := "- | - | - | - | -"
		if cfg.baselineBin != "" {
			w := f.BaselineOneClient
			was = fmt.Sprintf("%.0f | %.2f | %.2f | %d | **%.2f**", w.RPS, w.P50, w.P99, w.Errors, f.Ratios.OneClientP50VsBaseline)
		}
		fmt.Fprintf(b, "| %s | %.0f | %.2f | %.2f | %d | %s |\n",
			r.Protocol, f.OneClient.RPS, f.OneClient.P50, f.OneClient.P99, f.OneClient.Errors, was)
	}
	if cfg.baselineBin == "" {
		b.WriteString("\nNo baseline LOMS was measured: pass -baseline-bin OLD, a minizon binary built before the change.\n")
		return
	}
	fmt.Fprintf(b, "\nBaseline: the LOMS of %s, on the same database and broker, loaded right after the measured one in every round; "+
		"p50 / baseline is the median of the rounds' ratios.\n", cfg.baselineBin)
}

func cpuTable(b *strings.Builder, rows []row) {
	b.WriteString("\n## Where the CPU goes: microseconds per request, Postgres / LOMS / load generator / harness (Kafka)\n\n")
	b.WriteString("| clients | protocol | pgbench create | CreateOrder | pgbench select | Stocks | noop | pgbench one sku | flash sale |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		oneSKU, sale := "-", "-"
		if f := r.Flash; f != nil {
			oneSKU, sale = f.PgbenchOneSKU.cpuPerRequest(), f.FlashSale.cpuPerRequest()
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Clients, r.Protocol, r.PgbenchCreate.cpuPerRequest(),
			r.CreateOrder.cpuPerRequest(), r.PgbenchSelect.cpuPerRequest(), r.Stocks.cpuPerRequest(), r.Noop.cpuPerRequest(),
			oneSKU, sale)
	}
	b.WriteString("\nThe machine has " + strconv.Itoa(runtime.NumCPU()) + " CPUs: at N requests/s, a part using U µs per request keeps U·N/10⁶ of them busy.\n")
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
