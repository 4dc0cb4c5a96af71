# onboard — every target runs `setup` first; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PYTHON := $(BIN)/python
# The Unix port of MicroPython; MICROPYTHON=/path/to/micropython overrides it.
MICROPYTHON ?= $(BIN)/micropython
export MICROPYTHON
STAMP := $(VENV)/.setup-done
PORT ?=

ARGS ?=

.PHONY: help setup sim test lint typecheck build bench test-device

help:
	@echo "make sim                    the whole life of a simulated device (ARGS=--interactive)"
	@echo "make test                   all host tests + tests_device on the Unix port (with lint, typecheck)"
	@echo "make build                  lib/ compiled to .mpy in build/, with a size table"
	@echo "make bench                  speed, memory and size figures next to their goals"
	@echo "make lint | typecheck       ruff; pyright of lib/ against the ESP32 stubs"
	@echo "make test-device PORT=...   tests_device/ on a board through mpremote"
	@echo "make setup                  the toolchain in .venv (every target runs it)"

setup: $(STAMP)
	@tools/setup-system.sh

$(STAMP): requirements-dev.txt pyproject.toml
	@command -v python3 >/dev/null || { echo "onboard setup: python3 (3.10-3.13) is needed"; exit 1; }
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e .
	# pyright reads MicroPython's stdlib stubs from here instead of CPython's typeshed
	ln -sfn "$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" $(VENV)/mpy-typeshed
	touch $@

sim: setup
	$(BIN)/onboard sim $(ARGS)

test: setup lint typecheck
	$(PYTHON) -m pytest -q

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/pyright

build: setup
	$(BIN)/onboard build

bench: build
	$(BIN)/onboard bench

test-device: build
	@test -n "$(PORT)" || { echo "make test-device: say which board, e.g. PORT=/dev/ttyUSB0"; exit 2; }
	$(BIN)/onboard test-device --port $(PORT)
