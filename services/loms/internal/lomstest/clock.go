package lomstest

import (
	"sync/atomic"
	"time"
)

type atomicTime struct{ v atomic.Pointer[time.Time] }

func (a *atomicTime) Store(t time.Time) { a.v.Store(&t) }
func (a *atomicTime) Load() time.Time   { return *a.v.Load() }
