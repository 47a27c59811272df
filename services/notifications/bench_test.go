package notifications_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minizon/minizon/internal/telemetry"
	"github.com/minizon/minizon/services/notifications"
	"github.com/minizon/minizon/services/notifications/notifytest"
)

// BenchmarkConsume is the cost of one event through Notifications
// (decode, a transaction recording it, the log line, the commit) against a
// bare group consumer that reads and commits the same records: the
// baseline. Run: go test -run '^$' -bench Consume -count 6 ./services/notifications/ | benchstat -
func BenchmarkConsume(b *testing.B) {
	b.Run("baseline=bare-group-consumer", func(b *testing.B) {
		brokers := backlogOf(b, b.N)
		b.ResetTimer()
		client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup("bench"),
			kgo.ConsumeTopics(notifications.Topic), kgo.DisableAutoCommit(),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		defer client.Close()
		for n := 0; n < b.N; {
			fetches := client.PollFetches(b.Context())
			n += fetches.NumRecords()
			if err := client.CommitRecords(b.Context(), fetches.Records()...); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.StopTimer() // leaving the group is not part of the work
	})
	b.Run("notifications", func(b *testing.B) {
		brokers := backlogOf(b, b.N)
		db := newDatabase(b)
		conn, err := pgx.Connect(b.Context(), db)
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close(context.Background())
		b.ResetTimer()
		r := startQuiet(b, db, brokers)
		for {
			var n int
			if err := conn.QueryRow(b.Context(), "SELECT count(*) FROM notifications").Scan(&n); err != nil {
				b.Fatal(err)
			}
			if n >= b.N {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.StopTimer()
		r.Stop()
	})
}

// backlogOf starts a broker holding n order events.
func backlogOf(b *testing.B, n int) []string {
	b.Helper()
	broker := newBroker(b)
	recs := make([]*kgo.Record, 0, n+2)
	for id := int64(1); len(recs) < n; id++ {
		recs = append(recs, lifecycle(id)...)
	}
	produce(b, broker.ListenAddrs(), recs[:n]...)
	return broker.ListenAddrs()
}

// startQuiet runs Notifications with its log lines discarded.
func startQuiet(b *testing.B, db string, brokers []string) *notifytest.Running {
	b.Helper()
	return notifytest.Start(b, db, brokers, "", telemetry.Nop())
}
