// Package kafkatopic makes sure the Kafka topics a service writes to exist.
package kafkatopic

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Ensure creates topic with the given partitions unless it exists,
// retrying while the broker is unreachable (starting at backoff, doubling
// to 5s) until ctx is done. Broker auto-creation would also work, but with
// the broker's default partition count. A refusal that retrying cannot cure
// (no permission to create topics, a policy) is logged and Ensure returns:
// the topic may well exist, made by an operator.
func Ensure(ctx context.Context, client *kgo.Client, topic string, partitions int32, backoff, timeout time.Duration, log *slog.Logger) {
	adm := kadm.NewClient(client)
	for ; ctx.Err() == nil; backoff = min(backoff*2, 5*time.Second) {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		res, err := adm.CreateTopic(cctx, partitions, -1, nil, topic)
		cancel()
		if err == nil {
			err = res.Err
		}
		if err == nil || errors.Is(err, kerr.TopicAlreadyExists) {
			return
		}
		var ke *kerr.Error
		if errors.As(err, &ke) && !ke.Retriable {
			log.WarnContext(ctx, "cannot create kafka topic; going ahead", "topic", topic, "error", err.Error())
			return
		}
		log.WarnContext(ctx, "cannot create kafka topic yet", "topic", topic, "error", err.Error())
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}
