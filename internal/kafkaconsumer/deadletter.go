package kafkaconsumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrPoison marks a record that no retry can handle (it cannot be
// decoded, say): it is written to the dead-letter topic and skipped.
var ErrPoison = errors.New("record cannot be handled")

// Header names added to a dead-lettered record, after its own headers.
const (
	// HeaderReason is the Handler's error text.
	HeaderReason = "dlq-reason"
	// HeaderTopic, HeaderPartition and HeaderOffset say where the record
	// came from (partition and offset in decimal).
	HeaderTopic     = "dlq-topic"
	HeaderPartition = "dlq-partition"
	HeaderOffset    = "dlq-offset"
)

// deadLetter writes rec to the dead-letter topic with why it was rejected
// and where it came from.
func (c *Consumer) deadLetter(ctx context.Context, rec *kgo.Record, reason error) error {
	headers := append(rec.Headers[:len(rec.Headers):len(rec.Headers)],
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
	)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dl := &kgo.Record{Topic: c.cfg.DeadLetterTopic, Key: rec.Key, Value: rec.Value, Headers: headers}
	if err := c.client.ProduceSync(ctx, dl).FirstErr(); err != nil {
		return fmt.Errorf("write to %s: %w", c.cfg.DeadLetterTopic, err)
	}
	c.metrics.deadLettered.WithLabelValues(rec.Topic).Inc()
	c.log.WarnContext(ctx, "consumer: record dead-lettered", "topic", rec.Topic, "partition", rec.Partition,
		"offset", rec.Offset, "dead_letter_topic", c.cfg.DeadLetterTopic, "reason", reason.Error())
	return nil
}
