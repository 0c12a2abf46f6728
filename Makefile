# The two verbs a new user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PERF_ANALYZER := $(VENV)/tools/perf_analyzer/perf_analyzer
HOST ?= 127.0.0.1
PORT ?= 8000
# MNIST in torchvision's layout (MNIST/raw/); empty means $$MLP_SERVE_DATA_DIR or the user cache.
DATA_DIR ?= $(firstword $(wildcard ../shared/data))

.PHONY: serve test lint format train bench mutate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/python -m service --host $(HOST) --port $(PORT) --models models

# tests/demo drives Debian's chromium (/usr/bin/chromium) headless; installed only when missing.
test: $(STAMP) $(PERF_ANALYZER)
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; \
		elif command -v sudo >/dev/null; then sudo=sudo; \
		else echo "chromium is missing: install it as root (apt-get install chromium)" >&2; exit 1; fi; \
		$$sudo apt-get update && $$sudo apt-get install -y chromium; }
	$(BIN)/python -m pytest

# Triton's perf_analyzer (tests/service/test_perf_analyzer.py, the bench): from the
# tritonclient 2.41.0 and CUDA runtime wheels, and Debian's libb64-0d, installed when missing.
$(PERF_ANALYZER): | $(STAMP)
	@test -e /usr/lib/x86_64-linux-gnu/libb64.so.0d || { \
		if [ "$$(id -u)" -eq 0 ]; then sudo=; \
		elif command -v sudo >/dev/null; then sudo=sudo; \
		else echo "libb64-0d is missing: install it as root (apt-get install libb64-0d)" >&2; exit 1; fi; \
		$$sudo apt-get update && $$sudo apt-get install -y libb64-0d; }
	$(BIN)/python -m bench.perf_analyzer install $(dir $(PERF_ANALYZER))

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

train: $(STAMP)
	$(BIN)/python -m training all --strict $(if $(DATA_DIR),--data-dir $(DATA_DIR))

# Every scenario against both ceilings, naive and LitServe, reported in bench/runs/ (git-ignored);
# `make bench ARGS=--quick` is a smoke run, `ARGS="--out bench/results"` replaces the committed report.
bench: $(STAMP) $(PERF_ANALYZER)
	$(BIN)/python -m bench $(ARGS)
	$(BIN)/python -m bench.perf_analyzer sweep $(dir $(PERF_ANALYZER))

# Mutation testing (minutes; not in CI): [tool.mutmut] in pyproject.toml names the modules and
# their tests; `$(BIN)/mutmut results` lists the survivors, `$(BIN)/mutmut show NAME` one diff.
mutate: $(STAMP)
	$(BIN)/mutmut run --max-children 2
	@$(BIN)/mutmut results --all true | awk -F': ' '{ split($$1, at, /\.x/); m = at[1]; \
		gsub(/^ +/, "", m); n[m]++; if ($$2 == "killed" || $$2 == "timeout") k[m]++ } \
		END { for (m in n) printf "%-28s %4d/%4d killed  %5.1f%%\n", m, k[m], n[m], 100 * k[m] / n[m] }' | sort

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache mutants
