# Developer entry points. `make test` and `make demo` work on a fresh machine: they install the
# Debian packages, the Python virtualenv and the test binaries they need by themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PYTHON      := $(VENV)/bin/python
BUILD       := .build
COLLECTIONS := $(BUILD)/collections
LINK        := $(COLLECTIONS)/ansible_collections/gitops/federation
LOCALENV    ?= $(BUILD)/localenv
N           ?= 3
WORKLOADS   ?= 0
PYTEST_ARGS ?=
export ANSIBLE_COLLECTIONS_PATH := $(abspath $(COLLECTIONS)):$(abspath $(VENV))/lib/python3.11/site-packages
export GITOPS_FEDERATION_LOCALENV := $(abspath $(LOCALENV))

.PHONY: help deps system-packages venv binaries collection-link test unit integration sanity lint molecule \
        bench bench-push ee-context clusters-up clusters-down git-up git-down demo demo-down clean

help:
	@echo "make demo          start local clusters + git server, run sources and sync, print status"
	@echo "make demo-down     stop everything the demo started"
	@echo "make test          install what is needed, then unit, integration, sanity, lint and molecule tests"
	@echo "make molecule      molecule test --all: every scenario of molecule/ on one shared set of real clusters"
	@echo "make bench         sync.yml vs cluster_sync, kubectl and kubernetes.core on local clusters (docs/performance.md)"
	@echo "make bench-push    push-to-applied latency of sync on push (Gitea, ansible-rulebook, local clusters)"
	@echo "make ee-context    ansible-builder create: the execution environment build context in .build/ee/context"
	@echo "make clusters-up N=3 / make clusters-down    real local control planes"
	@echo "make clusters-up WORKLOADS=1   ... also controller-manager, scheduler and kwok: Pods run"

## -- installation ------------------------------------------------------------------------------

system-packages:
	@bash tools/system-packages.sh

$(VENV)/.installed: requirements.txt test-requirements.txt | system-packages
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -r test-requirements.txt
	@touch $@

venv: $(VENV)/.installed

binaries:
	@bash tools/binaries/build.sh >/dev/null

# Ansible and Python both find the collection through ansible_collections/gitops/federation.
collection-link:
	@mkdir -p $(dir $(LINK))
	@ln -sfn $(abspath .) $(LINK)

deps: system-packages venv binaries collection-link

## -- tests -------------------------------------------------------------------------------------

# The quick checks first; then the cluster tests and the Molecule scenarios side by side (each starts its own
# local clusters; both spend most of their time waiting on API servers, rollouts and bakes, not on the CPU).
test: deps unit sanity lint
	@$(MAKE) --no-print-directory -j2 --output-sync=line integration molecule

unit: venv collection-link
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

# Cluster and git tests never skip: if a server cannot start, the session fixture fails the run.
integration: deps
	$(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

sanity: venv
	@bash tools/sanity.sh

lint: venv collection-link
	$(VENV)/bin/ansible-lint

# Every scenario (molecule/README.md). They share one local environment in .build/molecule/localenv: the default
# scenario's create starts it once before all of them and its destroy stops it after them (shared_state); the
# trap stops it also when Molecule fails before its destroy or is interrupted.
MOLECULE_LOCALENV := $(abspath $(BUILD))/molecule/localenv
# The rollout scenario has clusters of its own (with workloads) and its own create/destroy, which `--all` with
# shared state would skip: it runs on its own, after the others.
molecule: deps
	@trap '$(PYTHON) -m tools.localenv --dir $(MOLECULE_LOCALENV) demo-down >/dev/null 2>&1 || true' EXIT; \
	PATH=$(abspath $(VENV))/bin:$$PATH $(abspath $(VENV))/bin/molecule test --all --exclude rollout
	@trap '$(PYTHON) -m tools.localenv --dir $(abspath $(BUILD))/molecule/rollout demo-down >/dev/null 2>&1 || true' EXIT; \
	PATH=$(abspath $(VENV))/bin:$$PATH $(abspath $(VENV))/bin/molecule test -s rollout

# Not part of `make test` (tests/integration/test_bench.py runs a small one). Options: BENCH_ARGS, e.g.
# BENCH_ARGS="--objects 100,1000 --clusters 1,3 --runs 3"; results in docs/performance.json (docs/performance.md).
BENCH_ARGS ?=
bench: deps
	PATH=$(abspath $(VENV))/bin:$$PATH $(PYTHON) -m tools.bench $(BENCH_ARGS)

# Sync on push: git push -> applied on every attached cluster, real Gitea and ansible-rulebook
# (docs/performance.md). BENCH_PUSH_ARGS, e.g. "--clusters 2,6 --runs 3"; results in docs/performance-push.json.
BENCH_PUSH_ARGS ?=
bench-push: deps
	PATH=$(abspath $(VENV))/bin:$$PATH $(PYTHON) -m tools.bench.push_latency $(BENCH_PUSH_ARGS)

## -- execution environment ---------------------------------------------------------------------

# The build context AWX/AAP images are built from (docs/awx.md); `ansible-builder build` takes the same file.
# execution-environment.yml copies .build/ee/kustomize into the image: the pinned release the tests use.
EE_CONTEXT ?= $(BUILD)/ee/context

ee-context: venv binaries
	@mkdir -p $(BUILD)/ee
	@install -m 0755 "$$($(PYTHON) -c 'from tools.localenv.binaries import binary; print(binary("kustomize"))')" \
		$(BUILD)/ee/kustomize
	$(VENV)/bin/ansible-builder create -f execution-environment.yml --context $(EE_CONTEXT) --output-filename Containerfile

## -- local environments ------------------------------------------------------------------------

clusters-up: deps
	@$(PYTHON) -m tools.localenv clusters-up --count $(N) $(if $(filter 1 yes true,$(WORKLOADS)),--workloads)

clusters-down: venv
	@$(PYTHON) -m tools.localenv clusters-down

git-up: deps
	@$(PYTHON) -m tools.localenv git-up

git-down: venv
	@$(PYTHON) -m tools.localenv git-down

demo: deps
	@bash tools/demo.sh

demo-down: venv
	@$(PYTHON) -m tools.localenv clusters-down
	@$(PYTHON) -m tools.localenv git-down

clean:
	rm -rf $(BUILD) tests/output
