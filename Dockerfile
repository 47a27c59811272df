# syntax=docker/dockerfile:1
# One image for every miniZON service; the command picks the service
# (`loms`, `checkout`, `product`, `notifications`), as compose.yaml does.

# The build stage's Go minor version follows go.mod's `go` line
# (cmd/minizon/compose_test.go checks it). It runs on the builder's own
# platform and cross-compiles, so a multi-platform build needs no emulation.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first: this layer is rebuilt only when go.mod or go.sum change.
# gen/ is a module of its own that go.mod replaces with the local folder.
COPY go.mod go.sum ./
COPY gen/go.mod gen/go.sum ./gen/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
# Static binary (no cgo), so it runs on distroless/static without libc;
# -trimpath and -s -w keep build paths and debug tables out of the image.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags='-s -w' -o /out/minizon ./cmd/minizon

# No shell, no package manager, CA certificates and tzdata only. Health
# checks therefore run the binary itself: `minizon healthcheck`.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/minizon /minizon
USER nonroot:nonroot
ENTRYPOINT ["/minizon"]
