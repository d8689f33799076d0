# syntax=docker/dockerfile:1
# Two images from one build: the portal (the default target) and the writeback agent (--target agent).
#   docker build -t writeback .
#   docker build --target agent -t writeback-agent .

# Build: static, cgo-free binaries of both programs.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/writeback ./cmd/writeback \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/writeback-agent ./cmd/writeback-agent \
 && mkdir -p /out/data \
 && mkdir -p -m 0700 /out/agent-data

# The agent: distroless static, non-root; its directory connection, key file and identity live in the /data volume.
# It only connects out (to the portal's https:// URL and to the directory), so it exposes no port.
FROM gcr.io/distroless/static-debian12:nonroot AS agent
COPY --from=build /out/writeback-agent /usr/local/bin/writeback-agent
COPY --from=build --chown=nonroot:nonroot /out/agent-data /data
ENV WRITEBACK_AGENT_DATA=/data
VOLUME ["/data"]
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["/usr/local/bin/writeback-agent", "status", "--connected"]
ENTRYPOINT ["/usr/local/bin/writeback-agent"]
CMD ["run"]

# The portal (last, so the default target): distroless static, non-root; state lives in the /data volume.
FROM gcr.io/distroless/static-debian12:nonroot AS portal
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
