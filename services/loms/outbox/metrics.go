package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BacklogReader reports what waits to be published.
type BacklogReader interface {
	Backlog(ctx context.Context) (Backlog, error)
}

// Metrics reports the outbox's backlog to Prometheus, read from the
// database at each scrape, so that every replica reports the same truth.
type Metrics struct {
	src     BacklogReader
	unsent  *prometheus.Desc
	age     *prometheus.Desc
	timeout time.Duration
}

// NewMetrics returns a collector reading the backlog from src.
func NewMetrics(src BacklogReader) *Metrics {
	return &Metrics{
		src: src,
		unsent: prometheus.NewDesc("minizon_outbox_unsent_events",
			"Order events written but not yet acknowledged by Kafka.", nil, nil),
		age: prometheus.NewDesc("minizon_outbox_oldest_unsent_age_seconds",
			"How long the oldest unsent order event has waited; 0 when none waits.", nil, nil),
		timeout: 2 * time.Second,
	}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.unsent
	ch <- m.age
}

// Collect implements prometheus.Collector. After a failed read the two
// metrics are left out of the scrape (and the error logged), rather than
// reported as a stale 0.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), m.timeout)
	defer cancel()
	b, err := m.src.Backlog(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(m.unsent, err)
		ch <- prometheus.NewInvalidMetric(m.age, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(m.unsent, prometheus.GaugeValue, float64(b.Unsent))
	ch <- prometheus.MustNewConstMetric(m.age, prometheus.GaugeValue, b.OldestAge.Seconds())
}
