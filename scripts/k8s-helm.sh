#!/usr/bin/env bash
# Runs helm, as built from tools/kube into the cache (scripts/k8s-lib.sh),
# with the given arguments; HELM=/path/to/helm uses another one instead.
# `make chart-lint` and `make deploy` go through it:
#
#   scripts/k8s-helm.sh lint --strict charts/paygate -f charts/paygate/ci/minimal-values.yaml
#   scripts/k8s-helm.sh upgrade --install paygate charts/paygate -n paygate -f k8s/paygate/values-dev.yaml

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/k8s-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-lib.sh"

if [[ -n "${HELM:-}" ]]; then
	HELM_BIN="$HELM"
else
	build_helm
fi
cd "$PAYGATE_ROOT" || die "no $PAYGATE_ROOT"
exec "$HELM_BIN" "$@"
