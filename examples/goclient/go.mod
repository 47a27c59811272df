module github.com/minizon/minizon/examples/goclient

go 1.26.0

require (
	connectrpc.com/connect v1.21.1
	github.com/minizon/minizon/gen v0.0.0-00010101000000-000000000000
)

require google.golang.org/protobuf v1.36.12 // indirect

// The replace builds the example against the generated code in this checkout.
// A real client drops it and depends on a published version instead:
//
//	go get github.com/minizon/minizon/gen/...@latest   (or @<commit>)
replace github.com/minizon/minizon/gen => ../../gen
