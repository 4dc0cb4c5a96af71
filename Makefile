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
BOARD ?= esp32_generic
CONFIG ?= firmware/config.example.json
# CLOUD=blynk: deploy / romfs / firmware only that cloud's components (manifests/); default all
CLOUD ?=
CLOUD_ARGS = $(foreach c,$(subst $(comma), ,$(CLOUD)),--cloud $(c))
comma := ,
# ROMFS=1: `make deploy` puts the library into the board's ROMFS partition
ROMFS ?=
# a MicroPython source tree and ESP-IDF, for `make firmware`
MICROPYTHON_DIR ?=
IDF_PATH ?=
FIRMWARE ?= build/firmware/$(BOARD)/firmware.bin
# the classic ESP32 boots from 0x1000, the S3 and C3 from 0x0
FLASH_OFFSET ?= $(if $(filter esp32_generic,$(BOARD)),0x1000,0x0)

ARGS ?=
# the emulated ESP32: ../shared/tools/esp32-qemu beside the repository, or your own copies
ESP32_QEMU ?= $(CURDIR)/../shared/tools/esp32-qemu
QEMU ?= $(ESP32_QEMU)/qemu-system-xtensa
QEMU_ROMS ?= $(ESP32_QEMU)
ESP32_FIRMWARE ?= $(ESP32_QEMU)/ESP32_GENERIC-20250415-v1.25.0.bin
export QEMU QEMU_ROMS ESP32_FIRMWARE
ESP32_FLASH ?= build/esp32/flash.bin
HAVE_EMULATOR := test -x "$(QEMU)" -a -f "$(QEMU_ROMS)/esp32-v3-rom.bin" -a -f "$(ESP32_FIRMWARE)"
ESP32_TESTS = ONBOARD_ESP32=1 $(PYTHON) -m pytest -q -s --durations=12 tests_host/test_esp32.py
NO_EMULATOR = no emulated ESP32 at $(ESP32_QEMU) (set QEMU=, QEMU_ROMS=, ESP32_FIRMWARE=)

.PHONY: help setup sim test lint typecheck build romfs bench test-device deploy firmware flash fleet \
	esp32 test-esp32 test-esp32-cuts test-esp32-lives mutate

help:
	@echo "make sim                    the whole life of a simulated device (ARGS=--interactive)"
	@echo "make test                   all host tests + tests_device on the Unix port (with lint, typecheck)"
	@echo "make build                  lib/ compiled to .mpy in build/, with a size table"
	@echo "make bench                  speed, memory and size figures next to their goals"
	@echo "make lint | typecheck       ruff; pyright of lib/ against the ESP32 stubs"
	@echo "make test-device PORT=...   tests_device/ on a board through mpremote"
	@echo "make romfs [BOARD=... CLOUD=...]   a ROMFS image of onboard's .mpy: build/onboard.romfs"
	@echo "make deploy PORT=... [BOARD=esp32_generic CONFIG=... CLOUD=blynk ROMFS=1]   .mpy + firmware + config to a board"
	@echo "make firmware BOARD=... MICROPYTHON_DIR=... IDF_PATH=... [CLOUD=blynk]  a frozen build"
	@echo "make flash PORT=... [BOARD=...]   write that build with esptool"
	@echo "make fleet N=20             N simulated devices against cloudsim"
	@echo "make esp32 [ESP32_FLASH=...] the emulated ESP32 with onboard deployed (QEMU)"
	@echo "make test-esp32             tests_device/ and end-to-end cases on the emulated ESP32"
	@echo "make test-esp32-cuts        power cuts during store writes on the emulated ESP32"
	@echo "make mutate ARGS='--module store --max 30'   mutation check of lib/ (slow, not in make test)"
	@echo "make test-esp32-lives       only the Blynk, Spoke Zone, plgd and AllThingsTalk lives, and certificate dates (711)"
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

# With the emulator, test-esp32 runs beside the host tests (its output is
# printed after theirs, ending with its twelve slowest tests). The ESP32 half
# is the longer: the emulator keeps about a core busy (a boot to setup mode
# alone is about 20 CPU-seconds), while the host half mostly waits on its devices
# and servers (alone on a 2-core machine: 10 minutes at under 0.9 of a core).
# So the host half runs on four workers and at a lower priority, and the
# emulator gets the cores when it needs them. (Two ESP32 workers were slower:
# with two emulators contending for the cores, a clean-clone CI run took 33
# CPU-minutes instead of 25, and 17.5 minutes instead of 15.8.)
test: setup lint typecheck
	@if $(HAVE_EMULATOR); then \
		$(BIN)/onboard build >/dev/null || exit 1; \
		echo "make test: test-esp32 runs beside the host tests; its output follows theirs"; \
		$(ESP32_TESTS) > build/test-esp32.log 2>&1 & esp32=$$!; \
		nice -n 10 $(PYTHON) -m pytest -q -n 4; host=$$?; \
		wait $$esp32; esp32=$$?; \
		echo "== make test-esp32, beside them:"; \
		cat build/test-esp32.log; \
		[ $$host = 0 ] && [ $$esp32 = 0 ]; \
	else \
		$(PYTHON) -m pytest -q -n 4 && echo "make test: skipped test-esp32: $(NO_EMULATOR)"; \
	fi

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/pyright

build: setup
	$(BIN)/onboard build

romfs: setup
	$(BIN)/onboard romfs --board $(BOARD) $(CLOUD_ARGS)

bench: build
	$(BIN)/onboard bench

test-device: build
	@test -n "$(PORT)" || { echo "make test-device: say which board, e.g. PORT=/dev/ttyUSB0"; exit 2; }
	$(BIN)/onboard test-device --port $(PORT)

deploy: setup
	@test -n "$(PORT)" || { echo "make deploy: say which board, e.g. PORT=/dev/ttyUSB0"; exit 2; }
	$(BIN)/onboard deploy --port $(PORT) --board $(BOARD) --config $(CONFIG) $(CLOUD_ARGS) \
		$(if $(ROMFS),--romfs)

firmware: setup
	@test -n "$(MICROPYTHON_DIR)" -a -d "$(MICROPYTHON_DIR)/ports/esp32" || { echo "make firmware: set MICROPYTHON_DIR to a MicroPython source tree (git clone of micropython)"; exit 2; }
	@test -n "$(IDF_PATH)" -a -f "$(IDF_PATH)/export.sh" || { echo "make firmware: set IDF_PATH to an ESP-IDF checkout (and run its install.sh once)"; exit 2; }
	. $(IDF_PATH)/export.sh && ONBOARD_CLOUDS=$(CLOUD) $(MAKE) -C $(MICROPYTHON_DIR)/ports/esp32 \
		BOARD=$(shell echo $(BOARD) | tr a-z A-Z | sed 's/ESP32_S3/ESP32_GENERIC_S3/;s/ESP32_C3/ESP32_GENERIC_C3/') \
		FROZEN_MANIFEST=$(CURDIR)/boards/$(BOARD)/manifest.py BUILD=$(CURDIR)/build/firmware/$(BOARD)
	@echo "firmware: build/firmware/$(BOARD)/firmware.bin"

flash: setup
	@test -n "$(PORT)" || { echo "make flash: say which board, e.g. PORT=/dev/ttyUSB0"; exit 2; }
	@test -f "$(FIRMWARE)" || { echo "make flash: no $(FIRMWARE); run make firmware BOARD=$(BOARD) first"; exit 2; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check esptool==5.6.0
	$(BIN)/esptool --port $(PORT) --baud 460800 write-flash $(FLASH_OFFSET) $(FIRMWARE)

N ?= 20
fleet: setup
	$(BIN)/onboard fleet --devices $(N)

esp32: setup
	@$(HAVE_EMULATOR) || { echo "make esp32: $(NO_EMULATOR)"; exit 2; }
	@$(BIN)/onboard build >/dev/null
	$(BIN)/onboard esp32 run --flash $(ESP32_FLASH) --config $(CONFIG) $(ARGS)

test-esp32: setup
	@$(HAVE_EMULATOR) || { echo "make test-esp32: $(NO_EMULATOR)"; exit 2; }
	@$(BIN)/onboard build >/dev/null
	$(ESP32_TESTS)

test-esp32-cuts: setup
	@$(HAVE_EMULATOR) || { echo "make test-esp32-cuts: $(NO_EMULATOR)"; exit 2; }
	@$(BIN)/onboard build >/dev/null
	ONBOARD_ESP32_CUTS=1 $(PYTHON) -m pytest -q tests_host/test_esp32.py -k power_cut
mutate: setup
	$(BIN)/onboard mutate $(ARGS)

test-esp32-lives: setup
	@$(HAVE_EMULATOR) || { echo "make test-esp32-lives: $(NO_EMULATOR)"; exit 2; }
	@$(BIN)/onboard build >/dev/null
	ONBOARD_ESP32_LIVES=1 $(PYTHON) -m pytest -q -s tests_host/test_esp32.py -k "life or 711"
