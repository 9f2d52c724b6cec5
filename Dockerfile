# syntax=docker/dockerfile:1
# mailtriage image: a static binary on distroless (CA roots and tzdata included),
# running as the non-root user. The build stage runs the same `go build` line
# as `make build`, so CI proves this stage without a Docker engine.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" -o /out/mailtriage ./cmd/mailtriage
# The state directory, owned by distroless' nonroot user (65532), copied into
# the final image so that the volume starts writable.
RUN mkdir -p /out/var/lib/mailtriage && chown 65532:65532 /out/var/lib/mailtriage

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mailtriage /usr/local/bin/mailtriage
COPY --from=build --chown=65532:65532 /out/var/lib/mailtriage /var/lib/mailtriage
USER nonroot
VOLUME ["/var/lib/mailtriage"]
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=2m --retries=3 CMD ["mailtriage","healthcheck"]
ENTRYPOINT ["mailtriage"]
CMD ["run","--config","/etc/mailtriage/config.yaml"]
