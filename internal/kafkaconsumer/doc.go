// Package kafkaconsumer reads a Kafka topic as a member of a consumer
// group, with one worker goroutine per assigned partition, and hands each
// record to the caller's Handler. What to read, what a record means and
// where rejected records go are the caller's, in Config; the package knows
// nothing of any one service.
//
// # What it guarantees
//
// At least once. A record's offset is committed only after Handler
// returned nil for it (or it was dead-lettered), and never past a record
// that was not: offsets are committed in order, after each run of up to
// 100 handled records, right after a dead letter, and when the partition
// is handed over. A group with no commit yet starts at the earliest
// offset. No record is skipped: a failing record is retried until it
// succeeds or the partition is handed over.
//
// In order per partition. A partition's records are handled one at a
// time, in offset order, by its worker; the next record starts only after
// the one before was handled. Partitions go concurrently, and there is no
// order across them: records that must stay in order share a key, so
// that they share a partition.
//
// Failures wait, they do not skip. A Handler error other than ErrPoison
// is retried after Config.RetryBackoff, doubling up to
// Config.RetryBackoffMax. Meanwhile that partition alone is paused (not
// fetched); the others go on. Once Handler succeeds the partition resumes
// from the failed record.
//
// Poison records go aside. A Handler error wrapping ErrPoison means no
// retry can help (the record cannot be decoded, say): the record goes to
// Config.DeadLetterTopic with its key, value and headers, plus the headers
// HeaderReason (the error's text), HeaderTopic, HeaderPartition and
// HeaderOffset (where it came from); it is committed at once and the next
// record follows. A dead letter that cannot be written is retried like any
// failure. Run creates the dead-letter topic, with one partition, unless
// it exists.
//
// Handovers. When a partition is revoked (a rebalance moves it) or Run's
// context ends, its worker stops between records: the record in hand may
// finish within Config.HandoverGrace, with its context untouched; after
// that its context is cancelled and it is abandoned. Then everything
// handled is committed, and the next owner starts right there. Rebalances
// wait for this, so HandoverGrace must stay well under the group's
// rebalance timeout. A partition lost outright (the member's session
// ended, so the group may have given it away already) is abandoned at
// once, without a commit.
//
// # Where a record is handled twice
//
// Handler must be idempotent, by an id the record carries, because a
// record is handled again by the partition's next owner, from the last
// committed offset, whenever it was handled but not committed when the
// partition changed hands. That happens when:
//
//   - a commit failed (it is logged, not retried) and no later one landed;
//   - the member died without a handover (a crash, a kill): up to the last
//     100 handled records per partition, and the one in hand;
//   - the partition was lost;
//   - the member died between writing a dead letter and committing it: the
//     dead letter is written again.
//
// Handler is also called again for a record whose call failed: at each
// retry, after a call that ran into Config.HandleTimeout, and at the next
// owner after the record was abandoned at a handover. Such a call must
// leave nothing half done (a transaction rolls back) or what it did must
// be harmless to repeat. A clean handover, where the record in hand
// finishes and the commit lands, hands nothing twice.
//
// # Metrics
//
// minizon_consumer_lag (records up to the last fetch's high watermark not
// yet handled, by topic and partition), minizon_consumer_retries_total and
// minizon_consumer_dead_lettered_total (by topic).
package kafkaconsumer
