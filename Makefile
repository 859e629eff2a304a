# `make demo` and `make test` do all setup on a fresh machine with Python >= 3.11 and pip.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit docs bench bench-quick bench-all clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "tidyctx needs Python >= 3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tidyctx report data/traces/cc-sessionshare-generaltoolcalls.json --html demo-report.html
	@echo
	$(BIN)/python examples/demo.py data/traces/cc-sessionshare-generaltoolcalls.json

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

test: lint typecheck unit

# The site, built offline into site/; --strict fails on a broken link, anchor or API reference.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The comparison suite: every strategy on every recorded run, the README's results section
# regenerated, the stand-in summarizer's calibration; bench-quick: 6 small runs, fewer peers.
# Headroom runs from a venv of its own: it pins python-dateutil<3 (through botocore).
HEADROOM := .venv-headroom/bin/python

$(HEADROOM):
	$(PYTHON) -m venv .venv-headroom
	.venv-headroom/bin/python -m pip install --quiet --disable-pip-version-check headroom-ai==0.42.0

bench: $(STAMP) $(HEADROOM)
	cd benchmarks && ../$(BIN)/python summary_calibration.py
	cd benchmarks && TIDYCTX_HEADROOM_PYTHON=$(CURDIR)/$(HEADROOM) ../$(BIN)/python compare.py --out results/compare.txt --json results/compare.json \
		--html ../compare.html --readme ../README.md

bench-quick: $(STAMP) $(HEADROOM)
	cd benchmarks && TIDYCTX_HEADROOM_PYTHON=$(CURDIR)/$(HEADROOM) ../$(BIN)/python compare.py --quick --out results/compare_quick.txt

# Every other benchmark behind the numbers in docs/benchmarks.md.
bench-all: bench
	$(BIN)/python benchmarks/token_counting.py
	cd benchmarks && ../$(BIN)/python cache_fidelity.py
	cd benchmarks && ../$(BIN)/python cache_strategies.py --churn
	$(BIN)/python benchmarks/truncate_speed.py
	$(BIN)/python benchmarks/adversarial.py | tee benchmarks/results/adversarial.txt
	$(BIN)/python benchmarks/store_speed.py
	cd benchmarks && ../$(BIN)/python trim_replay.py --naive
	$(BIN)/python benchmarks/slice_stdlib.py
	cd benchmarks && ../$(BIN)/python slice_replay.py
	cd benchmarks && ../$(BIN)/python summarize_replay.py
	cd benchmarks && ../$(BIN)/python proxy_cache_replay.py --out results/proxy_cache_replay.txt
	$(BIN)/python benchmarks/claude_code_proxy.py --out benchmarks/results/claude_code_proxy.txt

clean:
	rm -rf $(VENV) .venv-headroom .mypy_cache .pytest_cache .ruff_cache .hypothesis site
