// Package kafkaconsumer reads a Kafka topic in a consumer group with one worker
// per assigned partition: records of a partition are handled one after the
// other, in order, and a record's offset is committed only after it was
// handled. A record that fails is retried with backoff while only its own
// partition waits; one that can never be handled goes to a dead-letter
// topic.
package kafkaconsumer
