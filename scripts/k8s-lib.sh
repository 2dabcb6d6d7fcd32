# shellcheck shell=bash
# Helpers for the Kubernetes delivery scripts (scripts/k8s-*.sh). Source it
# after lib.sh:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   source "$(dirname "${BASH_SOURCE[0]}")/k8s-lib.sh"
#
# The cluster tools are built from the tools/kube Go module (never from
# prebuilt downloads) into the cache, once per version:
#
#   $PAYGATE_CACHE/bin/kube-apiserver-<k8s.io/kubernetes version>
#   $PAYGATE_CACHE/bin/kubectl-<k8s.io/kubernetes version>
#   $PAYGATE_CACHE/bin/etcd-<go.etcd.io/etcd/server/v3 version>
#   $PAYGATE_CACHE/bin/helm-<helm.sh/helm/v3 version>
#   $PAYGATE_CACHE/bin/{kubelet,kube-controller-manager,kube-scheduler,kube-proxy}-<k8s.io/kubernetes version>
#   $PAYGATE_CACHE/bin/coredns-<version>-<source hash>   (tools/kube/coredns)
#   $PAYGATE_CACHE/bin/{pause,hostkafka}-<source hash>    (tools/kube/cmd/pause, tools/kube/hostkafka)
#
# A cold build takes a while on 2 cores (see README, "Kubernetes"); the
# node tools share most packages with the API server. Warm runs only check
# that the files exist.

# shellcheck disable=SC2034 # used by the scripts that source this file
PAYGATE_KUBE_TOOLS="$PAYGATE_ROOT/tools/kube"

KUBE_APISERVER_BIN=""
KUBECTL_BIN=""
ETCD_BIN=""
HELM_BIN=""

# kube_module_version MODULE: prints MODULE's version from tools/kube/go.mod.
kube_module_version() {
	awk -v m="$1" '($1 == m && $2 ~ /^v/) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' \
		"$PAYGATE_KUBE_TOOLS/go.mod"
}

# kube_check_replaces KVERSION: every k8s.io/* replace in tools/kube/go.mod
# must point at the staging release that matches k8s.io/kubernetes
# KVERSION (v1.X.Y -> v0.X.Y).
kube_check_replaces() {
	local want="v0.${1#v1.}" bad
	bad="$(awk -v w="$want" '$1 ~ /^k8s\.io\// && $2 == "=>" && $4 != w { print "  " $1 " => " $3 " " $4 }' \
		"$PAYGATE_KUBE_TOOLS/go.mod")"
	if [[ -n "$bad" ]]; then
		printf '%s\n' "$bad" >&2
		die "tools/kube/go.mod: these replaces do not match k8s.io/kubernetes $1 (want $want)"
	fi
}

# kube_build NAME VERSION PACKAGE LDFLAGS: builds PACKAGE from tools/kube
# into $PAYGATE_CACHE/bin/NAME-VERSION unless it is there; prints the path.
# Builds are gentle on a small machine: -p=2 unless GOFLAGS says otherwise.
kube_build() {
	local name="$1" version="$2" pkg="$3" ldflags="$4"
	local out="$PAYGATE_CACHE/bin/$name-$version"
	if [[ ! -x "$out" ]]; then
		mkdir -p "$PAYGATE_CACHE/bin"
		local tmp="$out.tmp.$$" start=$SECONDS goflags="${GOFLAGS:-}"
		[[ "$goflags" == *-p=* ]] || goflags="$goflags -p=2"
		log "building $name $version -> $out (cold builds take minutes)"
		(cd "$PAYGATE_KUBE_TOOLS" && CGO_ENABLED=0 GOFLAGS="$goflags" \
			go build -trimpath -ldflags "-s -w $ldflags" -o "$tmp" "$pkg") >&2 || {
			rm -f "$tmp"
			die "building $name $version failed"
		}
		install_atomically "$tmp" "$out"
		log "built $name $version in $((SECONDS - start))s"
	fi
	printf '%s\n' "$out"
}

# json_field FIELD: prints the first string value of "FIELD" in the JSON
# that `go mod download -json` or `go list -m -json` prints on stdin.
json_field() {
	awk -v f="\"$1\":" '$1 == f { gsub(/[",]/, "", $2); print $2; exit }'
}

KUBE_VERSION=""
ETCD_VERSION=""
HELM_VERSION=""

# kube_versions: sets KUBE_VERSION, ETCD_VERSION and HELM_VERSION from
# tools/kube/go.mod and checks the k8s.io replaces.
kube_versions() {
	[[ -z "$KUBE_VERSION" ]] || return 0
	KUBE_VERSION="$(kube_module_version k8s.io/kubernetes)"
	ETCD_VERSION="$(kube_module_version go.etcd.io/etcd/server/v3)"
	HELM_VERSION="$(kube_module_version helm.sh/helm/v3)"
	[[ -n "$KUBE_VERSION" && -n "$ETCD_VERSION" && -n "$HELM_VERSION" ]] ||
		die "tools/kube/go.mod must require k8s.io/kubernetes, go.etcd.io/etcd/server/v3 and helm.sh/helm/v3"
	kube_check_replaces "$KUBE_VERSION"
}

# kube_ldflags: the version stamps of the upstream release builds, so that
# the servers and clients report real versions (the API server's emulation
# version depends on them).
kube_ldflags() {
	local commit date p out=""
	commit="$(cd "$PAYGATE_KUBE_TOOLS" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" 2>/dev/null | json_field Hash)"
	date="$(cd "$PAYGATE_KUBE_TOOLS" && go list -m -json k8s.io/kubernetes 2>/dev/null | json_field Time)"
	for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		out+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")"
		out+=" -X $p.gitTreeState=clean -X $p.buildDate=${date:-1970-01-01T00:00:00Z}"
		[[ -z "$commit" ]] || out+=" -X $p.gitCommit=$commit"
	done
	printf '%s\n' "$out"
}

# build_kube_apiserver, build_kubectl, build_etcd, build_helm: set
# KUBE_APISERVER_BIN, KUBECTL_BIN, ETCD_BIN and HELM_BIN, building what is
# missing from the cache.
build_kube_apiserver() {
	kube_versions
	local out="$PAYGATE_CACHE/bin/kube-apiserver-$KUBE_VERSION"
	[[ -x "$out" ]] || out="$(kube_build kube-apiserver "$KUBE_VERSION" k8s.io/kubernetes/cmd/kube-apiserver "$(kube_ldflags)")"
	KUBE_APISERVER_BIN="$out"
}

build_kubectl() {
	kube_versions
	local out="$PAYGATE_CACHE/bin/kubectl-$KUBE_VERSION"
	[[ -x "$out" ]] || out="$(kube_build kubectl "$KUBE_VERSION" k8s.io/kubernetes/cmd/kubectl "$(kube_ldflags)")"
	KUBECTL_BIN="$out"
}

# build_kube_node_tools: sets KUBELET_BIN, KUBE_CONTROLLER_MANAGER_BIN,
# KUBE_SCHEDULER_BIN and KUBE_PROXY_BIN, building what is missing from the
# cache. They come from the same k8s.io/kubernetes module and version as
# the kube-apiserver and run the single-node cluster of the tests
# (tools/kube/cluster). The first build takes tens of minutes on two
# cores; it reuses the apiserver's build cache.
KUBELET_BIN=""
KUBE_CONTROLLER_MANAGER_BIN=""
KUBE_SCHEDULER_BIN=""
KUBE_PROXY_BIN=""
build_kube_node_tools() {
	kube_versions
	local name out ldflags=""
	for name in kube-controller-manager kube-scheduler kube-proxy kubelet; do
		out="$PAYGATE_CACHE/bin/$name-$KUBE_VERSION"
		if [[ ! -x "$out" ]]; then
			[[ -n "$ldflags" ]] || ldflags="$(kube_ldflags)"
			out="$(kube_build "$name" "$KUBE_VERSION" "k8s.io/kubernetes/cmd/$name" "$ldflags")"
		fi
		case "$name" in
		kubelet) KUBELET_BIN="$out" ;;
		kube-controller-manager) KUBE_CONTROLLER_MANAGER_BIN="$out" ;;
		kube-scheduler) KUBE_SCHEDULER_BIN="$out" ;;
		kube-proxy) KUBE_PROXY_BIN="$out" ;;
		esac
	done
}

# build_coredns: sets COREDNS_BIN and COREDNS_VERSION, building CoreDNS
# from tools/kube/coredns (its own module) unless a build of the same
# sources is cached.
COREDNS_BIN=""
COREDNS_VERSION=""
build_coredns() {
	local mod="$PAYGATE_KUBE_TOOLS/coredns" key
	COREDNS_VERSION="$(awk '$1 == "require" && $2 == "github.com/coredns/coredns" { print $3; exit } $1 == "github.com/coredns/coredns" { print $2; exit }' "$mod/go.mod")"
	[[ -n "$COREDNS_VERSION" ]] || die "tools/kube/coredns/go.mod must require github.com/coredns/coredns"
	key="$({ go env GOVERSION; cat "$mod/go.mod" "$mod/go.sum" "$mod"/*.go; } | sha256_of | cut -c1-12)"
	COREDNS_BIN="$PAYGATE_CACHE/bin/coredns-$COREDNS_VERSION-$key"
	if [[ ! -x "$COREDNS_BIN" ]]; then
		mkdir -p "$PAYGATE_CACHE/bin"
		local tmp="$COREDNS_BIN.tmp.$$" start=$SECONDS goflags="${GOFLAGS:-}"
		[[ "$goflags" == *-p=* ]] || goflags="$goflags -p=2"
		log "building CoreDNS $COREDNS_VERSION -> $COREDNS_BIN (once; minutes)"
		(cd "$mod" && CGO_ENABLED=0 GOFLAGS="$goflags" go build -trimpath \
			-ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" -o "$tmp" .) >&2 || {
			rm -f "$tmp"
			die "building CoreDNS failed"
		}
		install_atomically "$tmp" "$COREDNS_BIN"
		log "built CoreDNS in $((SECONDS - start))s"
		find "$PAYGATE_CACHE/bin" -maxdepth 1 -name 'coredns-*' ! -name "$(basename "$COREDNS_BIN")" ! -name '*.tmp.*' -delete 2>/dev/null || true
	fi
}

# kube_build_keyed NAME DIR PKG: builds PKG statically in DIR (a directory
# of tools/kube or a module under it) into $PAYGATE_CACHE/bin/NAME-<hash of
# the Go version, DIR's go.mod/go.sum if any and its Go files>, unless it is
# there; prints the path and drops builds of other sources.
kube_build_keyed() {
	local name="$1" dir="$2" pkg="$3" key out
	key="$({ go env GOVERSION; cat "$dir"/go.mod "$dir"/go.sum "$dir"/*.go 2>/dev/null; } | sha256_of | cut -c1-12)"
	out="$PAYGATE_CACHE/bin/$name-$key"
	if [[ ! -x "$out" ]]; then
		mkdir -p "$PAYGATE_CACHE/bin"
		log "building $name -> $out"
		(cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out.tmp.$$" "$pkg") >&2 || {
			rm -f "$out.tmp.$$"
			die "building $name failed"
		}
		install_atomically "$out.tmp.$$" "$out"
		find "$PAYGATE_CACHE/bin" -maxdepth 1 -name "$name-*" ! -name "$name-$key" ! -name '*.tmp.*' -delete 2>/dev/null || true
	fi
	printf '%s\n' "$out"
}

# build_pause, build_hostkafka: set PAUSE_BIN (the pods' sandbox process,
# tools/kube/cmd/pause) and HOSTKAFKA_BIN (the Kafka-protocol broker the
# pods reach on the host, tools/kube/hostkafka).
PAUSE_BIN=""
HOSTKAFKA_BIN=""
build_pause() { PAUSE_BIN="$(kube_build_keyed pause "$PAYGATE_KUBE_TOOLS/cmd/pause" .)"; }
build_hostkafka() { HOSTKAFKA_BIN="$(kube_build_keyed hostkafka "$PAYGATE_KUBE_TOOLS/hostkafka" .)"; }

# ensure_node_packages: installs what the single-node test cluster runs
# from Debian when it is missing: containerd (with ctr), runc, the CNI
# plugins (bridge, host-local, loopback in /usr/lib/cni), iptables and
# conntrack (kube-proxy), iproute2 (the bridge) and curl (packed into the
# image of `helm test`). PostgreSQL, the external database, comes from
# ensure_postgres.
ensure_node_packages() {
	local missing=()
	command -v ip >/dev/null 2>&1 || missing+=(iproute2)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	command -v containerd >/dev/null 2>&1 || missing+=(containerd)
	command -v runc >/dev/null 2>&1 || missing+=(runc)
	[[ -x /usr/lib/cni/bridge ]] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null 2>&1 || missing+=(iptables)
	command -v conntrack >/dev/null 2>&1 || missing+=(conntrack)
	((${#missing[@]})) || return 0
	is_root || die "the test cluster needs these Debian packages: ${missing[*]} (and root)"
	log "installing ${missing[*]} (apt-get install)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	apt-get install -y -qq "${missing[@]}" >&2
}

build_etcd() {
	kube_versions
	ETCD_BIN="$(kube_build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 "")"
}

# Helm's default capabilities (helm template, helm lint) are the
# Kubernetes minor it is built against, as in Helm's own release builds.
build_helm() {
	kube_versions
	local minor
	minor="$(cut -d. -f2 <<<"$KUBE_VERSION")"
	HELM_BIN="$(kube_build helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm \
		"-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor")"
}

# build_kube_tools: builds all four, then drops builds of other versions
# (of these and of the node tools).
build_kube_tools() {
	build_kube_apiserver
	build_kubectl
	build_etcd
	build_helm
	local n
	for n in kube-controller-manager kube-scheduler kube-proxy kubelet; do
		find "$PAYGATE_CACHE/bin" -maxdepth 1 -name "$n-*" ! -name "$n-$KUBE_VERSION" ! -name '*.tmp.*' -delete 2>/dev/null || true
	done
	find "$PAYGATE_CACHE/bin" -maxdepth 1 \( \
		\( -name 'kube-apiserver-*' ! -name "kube-apiserver-$KUBE_VERSION" \) -o \
		\( -name 'kubectl-*' ! -name "kubectl-$KUBE_VERSION" \) -o \
		\( -name 'etcd-*' ! -name "etcd-$ETCD_VERSION" \) -o \
		\( -name 'helm-*' ! -name "helm-$HELM_VERSION" \) \) ! -name '*.tmp.*' -delete 2>/dev/null || true
}

# crds_dir: prints the directory of the operators' CRDs: $PAYGATE_CRDS_DIR,
# default ../shared/crds; a relative path is taken from the repository root.
crds_dir() {
	local d="${PAYGATE_CRDS_DIR:-../shared/crds}"
	[[ "$d" == /* ]] || d="$PAYGATE_ROOT/$d"
	[[ -d "$d" ]] || die "CRD directory $d not found: set PAYGATE_CRDS_DIR (Strimzi 1.2.0 and Prometheus Operator v0.85.0 CRDs)"
	(cd "$d" && pwd)
}
