package loadgen

import (
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are kept in microseconds from 1 µs to 10 minutes with three
// significant digits: 0.1% resolution at any scale.
const (
	minLatencyMicros = 1
	maxLatencyMicros = int64(10 * time.Minute / time.Microsecond)
	sigFigs          = 3
)

// rpcStats is what one RPC method saw during the measured window.
type rpcStats struct {
	mu sync.Mutex
	// hist holds the latency of successful calls.
	hist   *hdrhistogram.Histogram
	ok     int64
	errors map[string]int64
}

func newRPCStats() *rpcStats {
	return &rpcStats{
		hist:   hdrhistogram.New(minLatencyMicros, maxLatencyMicros, sigFigs),
		errors: map[string]int64{},
	}
}

// record adds one call. A failed call counts under its Connect code
// (canceled, deadline_exceeded, ...; unknown for a non-Connect error) and
// stays out of the latency histogram, so fast rejections cannot flatter it.
func (s *rpcStats) record(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors[connect.CodeOf(err).String()]++
		return
	}
	s.ok++
	// RecordValue fails only above the maximum: clamp, never drop.
	_ = s.hist.RecordValue(min(max(d.Microseconds(), minLatencyMicros), maxLatencyMicros))
}

// summary reads the stats; elapsed is the measured window.
func (s *rpcStats) summary(name string, elapsed time.Duration) RPCSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := RPCSummary{RPC: name, OK: s.ok, ErrorsByCode: map[string]int64{}}
	for code, n := range s.errors {
		sum.Errors += n
		sum.ErrorsByCode[code] = n
	}
	sum.Requests = sum.OK + sum.Errors
	if elapsed > 0 {
		sum.RPS = float64(sum.Requests) / elapsed.Seconds()
	}
	if s.ok > 0 {
		ms := func(q float64) float64 { return float64(s.hist.ValueAtQuantile(q)) / 1000 }
		sum.Latency = LatencyMillis{
			Mean: s.hist.Mean() / 1000,
			P50:  ms(50), P90: ms(90), P99: ms(99),
			Max: float64(s.hist.Max()) / 1000,
		}
	}
	return sum
}
