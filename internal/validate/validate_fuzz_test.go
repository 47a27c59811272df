package validate_test

import (
	"errors"
	"math"
	"testing"

	"github.com/minizon/minizon/internal/validate"
)

// FuzzChecks checks the field checks against the API contract's limits:
// ids above 0, skus other than 0, counts from 1 to 65535. A rejection is a
// *validate.Error naming the field it was given, which the servers map to
// InvalidArgument.
func FuzzChecks(f *testing.F) {
	f.Add("order_id", int64(1), uint32(1), uint32(1))
	f.Add("user", int64(0), uint32(0), uint32(0))
	f.Add("items[3].count", int64(-1), uint32(math.MaxUint32), uint32(65535))
	f.Add("", int64(math.MinInt64), uint32(1), uint32(65536))
	f.Add("sku", int64(math.MaxInt64), uint32(2), uint32(math.MaxUint32))
	f.Fuzz(func(t *testing.T, field string, id int64, sku, count uint32) {
		if validate.MaxCount != 65535 {
			t.Fatalf("MaxCount = %d, the contract says 65535", validate.MaxCount)
		}
		checkField(t, "ID", field, validate.ID(field, id), id > 0)
		checkField(t, "SKU", field, validate.SKU(field, sku), sku != 0)
		checkField(t, "Count", field, validate.Count(field, count), count >= 1 && count <= 65535)
	})
}

// checkField fails unless err is nil for a valid value, and a
// *validate.Error on field with a reason otherwise.
func checkField(t *testing.T, check, field string, err error, valid bool) {
	t.Helper()
	if valid {
		if err != nil {
			t.Fatalf("%s rejected a valid value: %v", check, err)
		}
		return
	}
	var ve *validate.Error
	if !errors.As(err, &ve) {
		t.Fatalf("%s: want a *validate.Error, got %T %v", check, err, err)
	}
	if ve.Field != field || ve.Reason == "" {
		t.Fatalf("%s: error %+v, want field %q and a reason", check, ve, field)
	}
	if err.Error() != field+": "+ve.Reason {
		t.Fatalf("%s: Error() = %q, want %q", check, err.Error(), field+": "+ve.Reason)
	}
}
