package kafkaconsumer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/kafkaconsumer"
)

// New refuses a config it cannot consume with, saying what is wrong,
// before it connects to anything.
func TestNewRefusesAnIncompleteConfig(t *testing.T) {
	t.Parallel()
	valid := func() kafkaconsumer.Config {
		return kafkaconsumer.Config{
			Brokers: []string{"127.0.0.1:1"}, Group: group, Topic: topic, DeadLetterTopic: deadLetter,
			Handler: func(context.Context, *kgo.Record) error { return nil },
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*kafkaconsumer.Config)
		want   string
	}{
		{"NoBrokers", func(c *kafkaconsumer.Config) { c.Brokers = nil }, "no brokers"},
		{"NoGroup", func(c *kafkaconsumer.Config) { c.Group = "" }, "group, topic and dead-letter topic are required"},
		{"NoDeadLetterTopic", func(c *kafkaconsumer.Config) { c.DeadLetterTopic = "" }, "dead-letter topic are required"},
		{"DeadLetterTopicIsTheTopic", func(c *kafkaconsumer.Config) { c.DeadLetterTopic = topic }, "is the topic consumed"},
		{"NoHandler", func(c *kafkaconsumer.Config) { c.Handler = nil }, "no handler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid()
			tc.change(&cfg)
			c, err := kafkaconsumer.New(cfg, nil, nil)
			if err == nil {
				c.Close()
				t.Fatal("New accepted the config")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: %v; want it to say %q", err, tc.want)
			}
		})
	}
}
