# lazyllm-images: the two set-up commands are `make demo` and `make test` (README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= --durations=15

.PHONY: help venv engine test-deps base test test-unit test-engine demo bench clean-images

help:
	@echo "make demo   - engine + offline base + the main job end to end"
	@echo "make test   - the whole suite (starts the engine, bootstraps the base)"
	@echo "make bench  - benchmarks (results in bench/results/)"

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,bench]'
	touch $@

venv: $(BIN)/.installed

engine:
	scripts/engine.sh

test-deps:
	scripts/test-deps.sh

base: venv engine
	$(BIN)/lazyllm images bootstrap

test: venv engine test-deps base
	$(BIN)/python -m pytest -m "unit or host or engine or e2e" $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/python -m pytest -m unit $(PYTEST_ARGS)

demo: venv engine base
	scripts/demo.sh

bench: venv engine base
	$(BIN)/python bench/startup.py

clean-images:
	docker image ls -q --filter label=org.lazyllm.managed=true | xargs -r docker image rm -f
