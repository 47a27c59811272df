# One image for every miniZON service; the command picks the service.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/minizon ./cmd/minizon

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/minizon /minizon
USER nonroot:nonroot
ENTRYPOINT ["/minizon"]
