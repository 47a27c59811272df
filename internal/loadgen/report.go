package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"text/tabwriter"
)

// Summary is the outcome of a run, as printed and as --json writes it.
type Summary struct {
	Scenario string `json:"scenario"`
	// Target and Protocol describe where the load went; the caller fills
	// them in.
	Target      string `json:"target,omitempty"`
	Protocol    string `json:"protocol,omitempty"`
	Concurrency int    `json:"concurrency"`
	// DurationSeconds is the measured window, warm-up excluded.
	DurationSeconds float64 `json:"duration_seconds"`
	// Primary names the headline RPC and RPS is its rate, failures
	// included.
	Primary string       `json:"primary_rpc"`
	RPS     float64      `json:"rps"`
	RPCs    []RPCSummary `json:"rpcs"`
	// Watch holds the watch scenario's own figures.
	Watch *WatchFigures `json:"watch,omitempty"`
}

// RPCSummary is one RPC method's figures.
type RPCSummary struct {
	RPC      string  `json:"rpc"`
	Requests int64   `json:"requests"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	// ErrorsByCode counts failures by Connect code name.
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
	// Latency is over successful calls.
	Latency LatencyMillis `json:"latency_ms"`
}

// LatencyMillis are latency figures in milliseconds.
type LatencyMillis struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// RPC returns the figures of one RPC, zero if it was never called.
func (s *Summary) RPC(name string) RPCSummary {
	for _, r := range s.RPCs {
		if r.RPC == name {
			return r
		}
	}
	return RPCSummary{RPC: name}
}

// Errors is the number of failed calls over every RPC.
func (s *Summary) Errors() int64 {
	var n int64
	for _, r := range s.RPCs {
		n += r.Errors
	}
	return n
}

// WriteJSON writes s as one indented JSON object.
func (s *Summary) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(s); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// WriteText writes s as a table a person reads.
func (s *Summary) WriteText(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s, %d workers, %.1fs measured", s.Scenario, s.Concurrency, s.DurationSeconds)
	if s.Protocol != "" {
		fmt.Fprintf(w, ", protocol %s", s.Protocol)
	}
	if s.Target != "" {
		fmt.Fprintf(w, ", against %s", s.Target)
	}
	fmt.Fprintf(w, "\n%s: %.1f requests/s\n\n", s.Primary, s.RPS)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "rpc\trequests\treq/s\terrors\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, r := range s.RPCs {
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t\n", r.RPC, r.Requests, r.RPS, r.Errors,
			r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	for _, r := range s.RPCs {
		for _, code := range slices.Sorted(maps.Keys(r.ErrorsByCode)) {
			fmt.Fprintf(w, "  %s failed with %s: %d\n", r.RPC, code, r.ErrorsByCode[code])
		}
	}
	if f := s.Watch; f != nil {
		fmt.Fprintf(w, "\n%d streams held open; %d changes never heard by their watcher\n", f.Streams, f.Lost)
		if f.RSSOpenMiB > 0 {
			fmt.Fprintf(w, "server memory (RSS): %.1f MiB before, %.1f MiB once the streams were open, %.1f MiB at the end: %+.1f MiB, %.0f bytes a stream\n",
				f.RSSBeforeMiB, f.RSSOpenMiB, f.RSSEndMiB, f.RSSEndMiB-f.RSSBeforeMiB, f.BytesPerStream)
		}
	}
	return nil
}
