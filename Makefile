# Herald — stable entry points (see README.md).
#   make up     start infrastructure and every component locally
#   make down   stop them
#   make test   install everything on a fresh machine and run the whole test suite
#   make bench  run the benchmarks
#   make cluster-up / cluster-down / test-cluster   the single-node Kubernetes (dev/cluster)

SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
UV_VERSION := 0.13.9
COMPONENTS := $(foreach d,services/common dev/pytest-herald services/users services/notifications services/recommendations services/scheduler gateway operator,$(if $(wildcard $(d)/pyproject.toml),$(d)))
PYTEST_ARGS ?=

.PHONY: help venv lock infra tools testenv graphiql up down test test-fast lint bench clean cluster-prepare cluster-up cluster-down test-cluster

help:
	@echo "make up | down | test | bench | lint | venv"

$(VENV)/.installed: requirements.lock $(foreach d,$(COMPONENTS),$(d)/pyproject.toml)
	@$(PYTHON) -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" 2>/dev/null || { echo "error: Python 3.11 is required (set PYTHON=...)" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install -q --python $(PY) --no-deps $(foreach d,$(COMPONENTS),-e $(d))
	@touch $@

venv: $(VENV)/.installed

# One lock for the uv workspace (pyproject.toml): uv.lock, resolved for Linux and Python
# 3.11 only, from which requirements.lock (everything: .venv) and requirements-runtime.lock
# (the components only: the images) are exported. Versions already in uv.lock are kept;
# `make lock LOCK_ARGS="--upgrade-package NAME"` moves one. The markers are dropped (one
# platform), so both stay plain `name==version` lists for pip.
EXPORT := $(VENV)/bin/uv export --frozen --no-emit-workspace --no-hashes --no-annotate --no-header --quiet
lock: venv
	$(VENV)/bin/uv lock $(LOCK_ARGS)
	$(EXPORT) --all-packages --all-groups | sed 's/ ;.*//' >requirements.lock
	$(EXPORT) --no-dev | sed 's/ ;.*//' >requirements-runtime.lock

infra:
	@bash dev/infra.sh up

tools:
	@bash dev/tools.sh

testenv:
	@bash dev/testenv/build.sh

# GraphiQL's files for the gateway, from pinned npm packages (gateway/graphiql/assets.json).
graphiql:
	@$(PYTHON) gateway/graphiql/install.py

up: venv infra graphiql
	@bash dev/run.sh up
	@bash dev/prometheus.sh up

down:
	@if [ -f dev/prometheus.sh ]; then bash dev/prometheus.sh down; fi
	@if [ -f dev/run.sh ]; then bash dev/run.sh down; fi
	@bash dev/infra.sh down

# The cluster's packages, binaries and images are built before the tests (outside any
# test timeout). A machine that cannot run a node at all (exit 3: no root, no cgroups,
# ...) is recorded in .run/cluster/unsupported and the cluster tests skip with the
# reason; any other failure fails the cluster tests loudly.
cluster-prepare: tools testenv
	@bash dev/cluster/cluster.sh prepare; rc=$$?; if [ $$rc -ne 0 ] && [ $$rc -ne 3 ]; then exit $$rc; fi

# The suite, with tests/cluster in the background beside it (dev/cluster/alongside.sh,
# log .run/cluster/logs/tests.log, printed at the end); CLUSTER_TESTS=0 leaves it out.
test: venv tools testenv infra graphiql
	@PY=$(PY) bash dev/cluster/alongside.sh $(PYTEST_ARGS)

CLUSTER_RELEASE_ARGS := -n herald --create-namespace -f dev/cluster/values-cluster.yaml -f .run/cluster/values-images.yaml

cluster-up: venv cluster-prepare
	@bash dev/cluster/cluster.sh up
	KUBECONFIG=.run/cluster/kubeconfig .run/bin/helm upgrade --install herald charts/herald $(CLUSTER_RELEASE_ARGS) --wait --timeout 8m
	@echo "GraphQL (gateway Service, from this machine): http://$$(KUBECONFIG=.run/cluster/kubeconfig .run/bin/kubectl -n herald get svc herald-gateway -o jsonpath='{.spec.clusterIP}'):5000/graphql"
	@echo "export KUBECONFIG=$(CURDIR)/.run/cluster/kubeconfig"

cluster-down:
	@bash dev/cluster/cluster.sh down

test-cluster: venv cluster-prepare
	$(PY) -m pytest -m cluster tests/cluster $(PYTEST_ARGS)

test-fast: venv graphiql
	$(PY) -m pytest -m "not integration and not kube and not e2e and not slow and not cluster" $(PYTEST_ARGS)

# Lint on its own (.ci/run runs it before the tests; pre-commit runs the same hooks):
# formatting, lint rules, types (strict on herald_common and the services' domain
# modules, see pyproject.toml), uv.lock agreeing with the pyproject files and both
# requirements files being its export.
lint: venv
	$(VENV)/bin/uv lock --check --offline --quiet
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(patsubst %/__init__.py,%,$(wildcard services/*/herald_*/__init__.py)) gateway/herald_gateway operator/herald_operator
	$(PY) -m pytest -q tests/test_repository.py -k "runtime_pins"

# Every benchmark at its full size (bench/README.md); BENCH_ARGS=--smoke for tiny sizes,
# BENCH_ARGS="inbox fanout" for some of them.
bench: venv infra
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .run
