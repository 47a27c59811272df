// Package faults holds miniZON's fault tests. LOMS and Notifications run as
// separate processes of the real binary, against a real Postgres and an
// in-process Kafka broker, under a load of CreateOrder, OrderPayed and
// CancelOrder; the tests restart Postgres, fail it over to a synchronous
// or an asynchronous standby, stop the broker, kill services with SIGKILL
// and run replicas side by side, then audit the stock, the outbox, the
// topic and the notifications (after an asynchronous failover, measuring
// what was lost instead of failing on it). The package has no code outside
// its tests.
//
//	go test ./faults/                                   # every fault, a few minutes
//	go test ./faults/ -run Soak -v -timeout 0 -soak 10m  # faults in rotation for 10 minutes
package faults
