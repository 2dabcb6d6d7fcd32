# syntax=docker/dockerfile:1
#
# paygate's container image: a static Go binary (the SQL migrations are
# embedded in it) on distroless/static, running as the distroless "nonroot"
# user (65532). The final image has no shell and no package manager.
#
#   docker build --build-arg VERSION=$(git describe --always --dirty) -t paygate .
#
# `make image` runs that. tools/kube's tests parse this file and run its
# build command (CGO_ENABLED=0 go build -trimpath -ldflags ...) to check the
# stamp that `paygate version` prints.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that source changes reuse the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \
	--mount=type=cache,target=/root/.cache/go-build \
	CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
	go build -trimpath -ldflags "-s -w -X github.com/paygate/paygate/internal/platform/buildinfo.Version=${VERSION}" \
	-o /out/paygate ./cmd/paygate

FROM gcr.io/distroless/static-debian12:nonroot AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="paygate" \
	org.opencontainers.image.description="paygate payment gateway" \
	org.opencontainers.image.version="${VERSION}" \
	org.opencontainers.image.source="https://github.com/paygate/paygate"
COPY --from=build /out/paygate /paygate
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/paygate"]
CMD ["serve"]
