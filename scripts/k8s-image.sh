#!/usr/bin/env bash
# Builds paygate's container image without Docker (`make image` when no
# Docker engine answers): the Dockerfile's build command (static binary,
# version stamp), then tools/kube/cmd/paygate-image packs it with the
# Dockerfile's layout (binary at /paygate, user 65532, CA bundle, no shell)
# into a docker-save archive:
#
#   scripts/k8s-image.sh REPO TAG VERSION   -> .local/image/<repo>-<tag>.tar
#
# Load it with `docker load -i FILE` or `ctr -n k8s.io images import FILE`
# (tools/kube/delivery keeps this layout and the Dockerfile's equal).

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

main() {
	local repo="${1:?repository}" tag="${2:?tag}" version="${3:?version}"
	local out="$PAYGATE_STATE/image" bin
	mkdir -p "$out"
	bin="$out/paygate-static"
	log "building paygate $version (CGO_ENABLED=0, as in the Dockerfile)"
	(cd "$PAYGATE_ROOT" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/paygate/paygate/internal/platform/buildinfo.Version=$version" \
		-o "$bin" ./cmd/paygate) || die "building paygate failed"
	local archive
	archive="$out/$(tr '/:' '__' <<<"$repo")-$tag.tar"
	(cd "$PAYGATE_ROOT/tools/kube" && go run ./cmd/paygate-image -bin "$bin" -version "$version" \
		-ref "$repo:$tag" -o "$archive") || die "packing the image failed"
	rm -f "$bin"
	log "load it with: docker load -i $archive   or   ctr -n k8s.io images import $archive"
}

main "$@"
