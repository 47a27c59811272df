package kafkaconsumer

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag          *prometheus.GaugeVec
	deadLettered *prometheus.CounterVec
	retries      *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "minizon_consumer_lag",
			Help: "Records of a partition up to its high watermark (as of the last fetch) not yet handled.",
		}, []string{"topic", "partition"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minizon_consumer_dead_lettered_total",
			Help: "Records that could not be handled and went to the dead-letter topic.",
		}, []string{"topic"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "minizon_consumer_retries_total",
			Help: "Failed attempts to handle a record, each followed by a retry.",
		}, []string{"topic"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lag, m.deadLettered, m.retries} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register consumer metrics: %w", err)
		}
	}
	return m, nil
}
