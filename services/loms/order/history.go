package order

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/minizon/minizon/internal/validate"
)

// Page sizes of ListOrders.
const (
	// DefaultPageSize is the page size when the caller asks for none.
	DefaultPageSize = 20
	// MaxPageSize bounds a page: a page is one short index scan, and a
	// caller that wants the whole history pages through it.
	MaxPageSize = 100
)

// Page is one page of a user's orders, newest first.
type Page struct {
	// Orders are at most the page size, by id descending.
	Orders []*Order
	// NextPageToken asks for the page after this one; empty on the last.
	NextPageToken string
}

// ListOrders returns one page of user's orders, newest (highest id) first.
// pageSize 0 means DefaultPageSize; pageToken is empty for the first page,
// otherwise the NextPageToken of the page before, issued for the same user.
func (s *Service) ListOrders(ctx context.Context, user int64, pageSize int32, pageToken string) (*Page, error) {
	if err := validate.ID("user", user); err != nil {
		return nil, err
	}
	size, err := PageSize(pageSize)
	if err != nil {
		return nil, err
	}
	before := int64(math.MaxInt64)
	if pageToken != "" {
		if before, err = decodePageToken(pageToken, user); err != nil {
			return nil, err
		}
	}
	// One order more than the page tells whether there is a next page, so
	// that the last page never carries a token to an empty one.
	orders, err := s.repo.ListByUser(ctx, user, before, size+1)
	if err != nil {
		return nil, fmt.Errorf("list orders of user %d: %w", user, err)
	}
	page := &Page{Orders: orders}
	if len(orders) > size {
		page.Orders = orders[:size]
		page.NextPageToken = encodePageToken(user, orders[size-1].ID)
	}
	return page, nil
}

// PageSize checks a requested page size and applies the default.
func PageSize(n int32) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, validate.Errorf("page_size", "must be between 0 (the default, %d) and %d, got %d", DefaultPageSize, MaxPageSize, n)
	}
	return int(n), nil
}

// A page token is the URL-safe base64 (unpadded) of
//
//	version (1 byte) | user (8 bytes) | before (8 bytes) | MAC (16 bytes)
//
// where before is the last order id of the page it follows and the MAC is
// HMAC-SHA-256, truncated, of the bytes before it. The MAC makes a token
// opaque and tamper-evident: a token changed by hand, made up, or issued
// for another user is refused instead of silently listing something else,
// and the format stays free to change under a new version byte.
//
// The key is fixed rather than a per-deployment secret on purpose: every
// replica must accept every other's tokens without shared configuration,
// and a forged token would gain nothing, because the listing is always of
// the request's user (whose token must name them) and the token only says
// where in that user's own history the page starts.
const (
	pageTokenVersion = 1
	pageTokenMACLen  = 16
	pageTokenLen     = 1 + 8 + 8 + pageTokenMACLen
)

var pageTokenKey = []byte("minizon.loms.v1.LomsService/ListOrders page token")

func pageTokenMAC(body []byte) []byte {
	m := hmac.New(sha256.New, pageTokenKey)
	m.Write(body)
	return m.Sum(nil)[:pageTokenMACLen]
}

// encodePageToken is the token of the page of user's orders below before.
func encodePageToken(user, before int64) string {
	b := make([]byte, 0, pageTokenLen)
	b = append(b, pageTokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(user))
	b = binary.BigEndian.AppendUint64(b, uint64(before))
	b = append(b, pageTokenMAC(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// decodePageToken returns the order id a token for user's orders pages
// below, or an error on page_token.
func decodePageToken(token string, user int64) (int64, error) {
	const pass = "pass a next_page_token back unchanged, or none for the first page"
	if len(token) != base64.RawURLEncoding.EncodedLen(pageTokenLen) {
		return 0, validate.Errorf("page_token", "is not a page token: %s", pass)
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != pageTokenLen || b[0] != pageTokenVersion {
		return 0, validate.Errorf("page_token", "is not a page token: %s", pass)
	}
	body, mac := b[:pageTokenLen-pageTokenMACLen], b[pageTokenLen-pageTokenMACLen:]
	if !hmac.Equal(mac, pageTokenMAC(body)) {
		return 0, validate.Errorf("page_token", "was not issued by this service or was altered: %s", pass)
	}
	tokenUser := int64(binary.BigEndian.Uint64(body[1:9]))
	before := int64(binary.BigEndian.Uint64(body[9:17]))
	if tokenUser != user {
		return 0, validate.Errorf("page_token", "was issued for another user's orders")
	}
	if before <= 0 {
		return 0, validate.Errorf("page_token", "is not a page token: %s", pass)
	}
	return before, nil
}
