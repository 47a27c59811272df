package store

import (
	"context"
	"errors"
	"testing"

	"github.com/minizon/minizon/services/loms/store/internal/db"
)

// TestStepMustRunTheQueryItWasRecordedWith checks the guard that keeps a
// step from reading another statement's result: a step that, on its second
// run, runs a different query than recorded fails instead.
func TestStepMustRunTheQueryItWasRecordedWith(t *testing.T) {
	t.Parallel()
	b := batchResult{sql: "SELECT 1"} // no batch: a mismatch must not touch it
	ctx := context.Background()
	if _, err := b.Exec(ctx, "SELECT 2"); !errors.Is(err, errStepChanged) {
		t.Errorf("Exec: %v", err)
	}
	if _, err := b.Query(ctx, "SELECT 2"); !errors.Is(err, errStepChanged) {
		t.Errorf("Query: %v", err)
	}
	if err := b.QueryRow(ctx, "SELECT 2").Scan(); !errors.Is(err, errStepChanged) {
		t.Errorf("QueryRow: %v", err)
	}
}

func TestStepThatRunsNoQueryIsABug(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("adding a step that runs no query did not panic")
		}
	}()
	var p pipeline
	p.add(func(*db.Queries) error { return nil })
}
