# Two commands for a fresh machine: `make demo` and `make test`. Both build their own venv.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "需要 Python 3.11 / Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/riskmatrix demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Throughput benchmarks (never pass/fail); see each module's --help for the 1,000,000 sizes.
bench: $(STAMP)
	$(BIN)/python -m bench.bench_simulate --enterprises 100000
	$(BIN)/python -m bench.bench_ingest --enterprises 100000 --events 500000
	$(BIN)/python -m bench.bench_features --size district
	$(BIN)/python -m bench.bench_explain --rows 20000
	$(BIN)/python -m bench.bench_training

clean:
	rm -rf $(VENV) var
