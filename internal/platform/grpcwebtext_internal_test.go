package platform

import (
	"bytes"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"connectrpc.com/connect"
)

// The request decoder takes base64 however the network splits it: one byte
// per read, padded parts back to back, a last part without its padding.
func TestBase64BodyDecodesWhateverTheReads(t *testing.T) {
	t.Parallel()
	b64 := base64.StdEncoding.EncodeToString
	want := []byte("gRPC-Web text mode, in parts")
	for name, body := range map[string]string{
		"one part":         b64(want),
		"padded parts":     b64(want[:1]) + b64(want[1:5]) + b64(want[5:]),
		"unpadded last":    b64(want[:3]) + base64.RawStdEncoding.EncodeToString(want[3:]),
		"empty first part": b64(nil) + b64(want),
	} {
		for reads, src := range map[string]io.Reader{
			"whole":      strings.NewReader(body),
			"bytewise":   iotest.OneByteReader(strings.NewReader(body)),
			"half-empty": iotest.HalfReader(strings.NewReader(body)),
		} {
			got, err := io.ReadAll(&base64Body{src: io.NopCloser(src)})
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("%s, %s reads: %q, %v; want %q", name, reads, got, err, want)
			}
		}
	}
	_, err := io.ReadAll(&base64Body{src: io.NopCloser(strings.NewReader("AAAA*AAA"))})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("bad base64: %v, want invalid_argument", err)
	}
}
