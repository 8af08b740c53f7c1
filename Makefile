# model-serving: `make up` runs the local stack, `make test` runs everything CI runs.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
PY ?= python3
VENV := $(ROOT)/.venv
BIN := $(VENV)/bin
STACK ?= local

# Offline, self-contained Pulumi: CLI and plugins from .tools/, state in a local file backend.
# The passphrase only guards the throwaway local stacks' secrets; real stacks set their own.
export PATH := $(ROOT)/.tools/bin:$(BIN):$(PATH)
export PULUMI_HOME ?= $(ROOT)/.tools/pulumi-home
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PULUMI_BACKEND_URL ?= file://$(ROOT)/.pulumi-state
export PULUMI_CONFIG_PASSPHRASE ?= model-serving-local
POLICY_CONFIG = $(if $(wildcard policy/config/$(STACK).json),--policy-pack-config policy/config/$(STACK).json,)

.PHONY: help venv pulumi pulumi-cmd up preview destroy test unit lint image-test bench clean

help:
	@echo "make up          pulumi up of the local stack (renders manifests to rendered/local/)"
	@echo "make test        everything CI runs: lint, unit, policy, app, integration, image tests"
	@echo "make preview STACK=dev|prod   pulumi preview with the policy pack"
	@echo "make lint | unit | image-test | bench | destroy STACK=… | clean"

# The venv is rebuilt only when a requirement file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt policy/requirements.txt app/requirements.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -r policy/requirements.txt -r app/requirements.txt
	touch $@

venv: $(VENV)/.installed

pulumi:
	scripts/install-pulumi

up: venv pulumi
	mkdir -p .pulumi-state
	pulumi stack select --create $(STACK)
	pulumi up --yes --stack $(STACK)

preview: venv pulumi
	mkdir -p .pulumi-state
	pulumi stack select --create $(STACK)
	pulumi preview --stack $(STACK) --diff --policy-pack policy $(POLICY_CONFIG) $(PREVIEW_ARGS)

destroy: venv pulumi
	pulumi destroy --yes --stack $(STACK)

# Any pulumi command with this Makefile's offline environment: make pulumi-cmd ARGS="stack ls".
pulumi-cmd:
	pulumi $(ARGS)

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/yamllint --strict stacks Pulumi.yaml

unit: venv
	$(BIN)/pytest tests/unit tests/policy

image-test: venv
	scripts/image-test

test: venv pulumi lint
	$(BIN)/pytest tests
	$(MAKE) image-test

bench: venv pulumi
	$(BIN)/python -m bench

clean:
	rm -rf rendered .pytest_cache .ruff_cache .mypy_cache
