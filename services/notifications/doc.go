// Package notifications wires Notifications together: it consumes LOMS's
// order events from Kafka and tells each user about their order, once per
// event, recording every notification in its own database.
package notifications
