// Package validate holds the field-level checks shared by the services'
// requests, and the error type that names the offending field.
package validate

import "fmt"

// MaxCount is the largest count of units in one item: counts were uint16 in
// the original specification.
const MaxCount = 65535

// Error is a caller's mistake in one request field. Transports map it to
// InvalidArgument.
type Error struct {
	// Field is the request field's path as the caller spelled it, e.g.
	// "items[2].count".
	Field string
	// Reason says what a valid value looks like.
	Reason string
}

// Error is "field: reason".
func (e *Error) Error() string { return e.Field + ": " + e.Reason }

// Errorf returns an *Error for field.
func Errorf(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ID checks a required positive identifier.
func ID(field string, v int64) error {
	if v <= 0 {
		return Errorf(field, "must be a positive id, got %d", v)
	}
	return nil
}

// SKU checks a stock keeping unit.
func SKU(field string, v uint32) error {
	if v == 0 {
		return Errorf(field, "must not be 0")
	}
	return nil
}

// Count checks a number of units.
func Count(field string, v uint32) error {
	if v == 0 || v > MaxCount {
		return Errorf(field, "must be between 1 and %d, got %d", MaxCount, v)
	}
	return nil
}
