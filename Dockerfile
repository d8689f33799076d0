# syntax=docker/dockerfile:1
# Build: a static, cgo-free binary.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/writeback ./cmd/writeback \
 && mkdir -p /out/data

# Run: distroless static, non-root; state lives in the /data volume.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/writeback /usr/local/bin/writeback
COPY --from=build --chown=nonroot:nonroot /out/data /data
ENV WRITEBACK_DATA=/data \
    WRITEBACK_LISTEN=0.0.0.0:8080
VOLUME ["/data"]
EXPOSE 8080
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/writeback", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/writeback"]
CMD ["serve"]
