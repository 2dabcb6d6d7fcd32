# Local development targets. `make` alone lists them.

SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/paygate/paygate/internal/platform/buildinfo.Version=$(VERSION)
BIN_DIR := .local/bin

.PHONY: help run test chaos build docs tour tools clean readme bench dashboards

help: ## List the targets.
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-8s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

run: ## Run the gateway with local Postgres, Kafka (devkafka) and mailpit; Ctrl-C stops all.
	@bash scripts/run.sh

test: ## Run go vet, gofmt, goimports and staticcheck checks, builds and go test -race against a throwaway Postgres.
	@bash scripts/test.sh

chaos: ## The chaos suite, long: 32 clients under kill -9, PostgreSQL, broker and SMTP outages, two replicas; prints its table.
	@bash scripts/chaos.sh

build: docs ## Build the gateway into .local/bin/paygate.
	@mkdir -p $(BIN_DIR)
	go build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN_DIR)/paygate ./cmd/paygate

docs: ## Fetch the pinned Redoc bundle (npm ci in web/docs) into api/redoc/ for GET /docs.
	@bash -c 'source scripts/lib.sh && build_docs'

tour: ## The API quick tour (curl + jq) against make run (TOUR_BASE_URL, default http://127.0.0.1:8080).
	@bash scripts/tour.sh

tools: ## Build the dev tools (devkafka, mailpit) into the cache.
	@bash -c 'source scripts/lib.sh && build_tools'

clean: ## Remove local state (.local/: run data, logs, binaries).
	rm -rf .local

readme: ## Regenerate the README's configuration table from the code.
	@bash scripts/readme-config.sh

bench: ## Transfers over HTTP next to pgbench on the same Postgres, durable and CPU-bound; writes docs/performance.md (BENCH_* in scripts/bench.sh).
	@bash scripts/bench.sh

dashboards: ## Regenerate the Grafana dashboards and copy dashboards and alert rules into the chart.
	go run ./internal/observability/gendashboards

# ---------------------------------------------------------------------------
# Kubernetes delivery (README, "Kubernetes"; k8s/README.md). helm, kubectl,
# kube-apiserver and etcd are built from tools/kube into the cache.

IMAGE_REPO ?= paygate
IMAGE_TAG ?= $(VERSION)
KUBE_NAMESPACE ?= paygate
DEPLOY_VALUES ?= k8s/paygate/values-dev.yaml

.PHONY: image chart-lint chart-test deploy dev

image: docs ## Build the container image IMAGE_REPO:IMAGE_TAG (default paygate:VERSION): docker build with a Docker engine, else a docker-save archive in .local/image/.
	@if docker info >/dev/null 2>&1; then \
		DOCKER_BUILDKIT=1 docker build --build-arg VERSION=$(VERSION) -t $(IMAGE_REPO):$(IMAGE_TAG) . ; \
	else \
		echo "==> no Docker engine: building the image without it (scripts/k8s-image.sh)"; \
		bash scripts/k8s-image.sh $(IMAGE_REPO) $(IMAGE_TAG) $(VERSION); \
	fi

chart-lint: ## helm lint --strict the chart with every ci/*-values.yaml.
	@for f in charts/paygate/ci/*-values.yaml; do \
		echo "==> helm lint --strict -f $$f"; \
		bash scripts/k8s-helm.sh lint --strict charts/paygate -f "$$f" || exit 1; \
	done

chart-test: ## Validate Dockerfile, chart, k8s/ and skaffold.yaml against a real kube-apiserver, and run the chart on a real single-node cluster (root).
	@bash scripts/k8s-test.sh

deploy: ## helm upgrade --install paygate into the current kube context (DEPLOY_VALUES, KUBE_NAMESPACE, IMAGE_REPO, IMAGE_TAG).
	bash scripts/k8s-helm.sh upgrade --install paygate charts/paygate \
		--namespace $(KUBE_NAMESPACE) --create-namespace -f $(DEPLOY_VALUES) \
		--set-string image.repository=$(IMAGE_REPO),image.tag=$(IMAGE_TAG)

dev: ## skaffold dev: build, deploy with k8s/paygate/values-dev.yaml, forward the API to :8080 (needs skaffold, Docker).
	PAYGATE_VERSION=$(VERSION) skaffold dev --port-forward
