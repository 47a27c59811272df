package rpctest

import (
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Marshal is m in protobuf binary, for fuzz seeds.
func Marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// DecodeAs decodes body into m as a Connect handler does for contentType:
// protobuf binary for application/proto, otherwise Connect's JSON
// (protojson discarding unknown fields, as connect-go does). It reports
// whether that worked.
func DecodeAs(contentType string, body []byte, m proto.Message) bool {
	if contentType == "application/proto" {
		return proto.Unmarshal(body, m) == nil
	}
	return len(body) > 0 && (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(body, m) == nil
}

// DecodeRequests decodes data the two ways a caller's bytes reach a
// service, protobuf binary and Connect's JSON, and returns each decoding
// that succeeded.
func DecodeRequests[M proto.Message](data []byte, newMsg func() M) []M {
	var out []M
	for _, ct := range []string{"application/proto", "application/json"} {
		if m := newMsg(); DecodeAs(ct, data, m) {
			out = append(out, m)
		}
	}
	return out
}
