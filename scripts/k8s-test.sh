#!/usr/bin/env bash
# Validates the Kubernetes delivery (`make chart-test`, and a step of
# `make test`):
#
#   1. builds kube-apiserver, kubectl, etcd and helm from the tools/kube Go
#      module into $PAYGATE_CACHE/bin, once per version (scripts/k8s-lib.sh);
#   2. go vet and go test in tools/kube: the Dockerfile (parsed, and its build
#      command run), helm lint --strict and helm template of every ci/ value
#      set, the values schema, the alerting rules (Prometheus' rule parser),
#      the dashboards, skaffold.yaml (skaffold's JSON schema), and a real
#      etcd + kube-apiserver on loopback with the Strimzi and Prometheus
#      Operator CRDs, against which every rendered object and every k8s/
#      manifest is applied with --dry-run=server --validate=strict, and the
#      chart is installed, upgraded and uninstalled; the OTel collector's
#      component names are checked with the collector tools/otelcol builds,
#      and k8s/jaeger/config.yaml is validated and run (OTLP in, query API
#      out) with the Jaeger v2 binary tools/jaeger builds for make run;
#   3. a real single-node cluster (tools/kube/e2e): kubelet,
#      kube-controller-manager, kube-scheduler and kube-proxy built from the
#      same module as the API server, CoreDNS (tools/kube/coredns), Debian's
#      containerd, runc and CNI plugins (installed when missing), PostgreSQL,
#      the Kafka-protocol broker (tools/kube/hostkafka) and mailpit on the
#      host; paygate's chart is installed, tested, upgraded under load,
#      drained, rolled back and uninstalled there. It needs root.
#
# The servers run in a temp dir on free ports and are stopped on any exit.
# Environment: PAYGATE_CRDS_DIR (default ../shared/crds from the repository
# root), PAYGATE_CACHE, KUBE_GOTESTFLAGS (e.g. -run TestChart -v).

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/k8s-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s-lib.sh"

main() {
	local crds start=$SECONDS
	crds="$(crds_dir)"
	ensure_node_packages
	ensure_postgres
	build_kube_tools
	build_kube_node_tools
	build_coredns
	build_pause
	build_hostkafka
	build_mailpit
	build_otelcol
	build_jaeger
	log "tools ready in $((SECONDS - start))s: $("$HELM_BIN" version --short), kubectl $("$KUBECTL_BIN" version --client -o yaml | awk '/gitVersion/ { print $2; exit }'), etcd $("$ETCD_BIN" --version | awk '/etcd Version/ { print $3 }')"
	log "CRDs from $crds"

	export PAYGATE_KUBE_APISERVER="$KUBE_APISERVER_BIN" PAYGATE_ETCD="$ETCD_BIN" \
		PAYGATE_KUBECTL="$KUBECTL_BIN" PAYGATE_HELM="$HELM_BIN" PAYGATE_CRDS_DIR="$crds" \
		PAYGATE_KUBELET="$KUBELET_BIN" PAYGATE_KUBE_CONTROLLER_MANAGER="$KUBE_CONTROLLER_MANAGER_BIN" \
		PAYGATE_KUBE_SCHEDULER="$KUBE_SCHEDULER_BIN" PAYGATE_KUBE_PROXY="$KUBE_PROXY_BIN" \
		PAYGATE_COREDNS="$COREDNS_BIN" PAYGATE_COREDNS_VERSION="$COREDNS_VERSION" PAYGATE_PAUSE="$PAUSE_BIN" \
		PAYGATE_HOSTKAFKA="$HOSTKAFKA_BIN" PAYGATE_MAILPIT="$MAILPIT_BIN" PAYGATE_PG_BIN="${PAYGATE_PG_BIN:-$PG_BIN}" \
		PAYGATE_OTELCOL="$OTELCOL_BIN" PAYGATE_JAEGER="$JAEGER_BIN"

	cd "$PAYGATE_KUBE_TOOLS" || die "no $PAYGATE_KUBE_TOOLS"
	local goflags="${GOFLAGS:-}"
	[[ "$goflags" == *-p=* ]] || goflags="$goflags -p=2"
	GOFLAGS="$goflags" go vet ./...
	# shellcheck disable=SC2086 # KUBE_GOTESTFLAGS is a list of flags.
	GOFLAGS="$goflags" go test -count=1 -timeout 40m ${KUBE_GOTESTFLAGS:-} ./...
	log "kubernetes delivery checks passed in $((SECONDS - start))s"
}

main "$@"
