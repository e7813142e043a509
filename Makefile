# lazyllm-images: the two set-up commands are `make demo` and `make test` (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= --durations=15
# Which engine `make engine`, `base`, `demo`, `bench` use: default (the distribution's, or $DOCKER_HOST's) or
# current (Debian sid's Docker beside it); a shell that ran eval "$(scripts/engine-env.sh current)" says current.
ENGINE ?= $(or $(LAZYLLM_ENGINE),default)
# The engines `make test` runs the suite on, in order (the first runs all of it, the others engine and e2e).
ENGINES ?= current default
# DOCKER_HOST and DOCKER_CONFIG for $(ENGINE), before a command that talks to it.
ENGINE_ENV = eval "$$(scripts/engine-env.sh $(ENGINE))";

.PHONY: help venv oracle engine test-deps base test test-unit test-engine demo bench clean-images

help:
	@echo "make demo   - engine + offline base + the main job end to end"
	@echo "make test   - the whole suite on the current engine, then engine+e2e on the default one"
	@echo "              (ENGINES=current or ENGINES=default for one; PYTEST_ARGS=... to pytest)"
	@echo "make engine - start the engine (ENGINE=current: Docker from Debian sid beside the default one)"
	@echo "make bench  - benchmarks (results in bench/results/)"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

venv: $(BIN)/.installed

# upstream LazyLLM's own engine, the oracle of the graph engine's differential tests (its own venv: the project does
# not depend on it; sqlalchemy is an import of its engine that the wheel does not declare)
ORACLE ?= .venv-oracle
$(ORACLE)/bin/.installed:
	test -x $(ORACLE)/bin/python || $(PYTHON) -m venv $(ORACLE)
	$(ORACLE)/bin/python -m pip install -q 'lazyllm==1.4.0' sqlalchemy
	touch $@

oracle: $(ORACLE)/bin/.installed

engine:
	scripts/engine.sh $(ENGINE)

test-deps:
	scripts/test-deps.sh

base: venv engine
	$(ENGINE_ENV) $(BIN)/lazyllm images bootstrap

# scripts/test.sh starts each engine, bootstraps its base and runs pytest against it.
test: venv test-deps oracle
	ENGINES="$(ENGINES)" VENV="$(VENV)" LAZYLLM_ORACLE_PYTHON=$(abspath $(ORACLE))/bin/python \
	  scripts/test.sh $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

demo: venv engine base
	$(ENGINE_ENV) scripts/demo.sh

bench: venv engine base
	@rc=0; for b in $${BENCHES:-startup plan install deploy mcp_bridge rag embed}; do \
	  echo "== bench/$$b.py"; \
	  ( $(ENGINE_ENV) LAZYLLM_BASE=$${LAZYLLM_BASE:-offline} $(BIN)/python bench/$$b.py ) || { echo "bench/$$b.py: exit $$?"; rc=1; }; \
	done; exit $$rc

clean-images:
	$(ENGINE_ENV) docker image ls -q --filter label=org.lazyllm.managed=true | xargs -r docker image rm -f
