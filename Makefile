# All set-up happens here: the first target that needs the virtual environment builds it.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint typecheck check bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m mongoelector demo

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check src tests benchmarks docs/examples conftest.py
	$(VENV)/bin/ruff format --check src tests benchmarks docs/examples conftest.py

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict src

check: test lint typecheck

# 2.x side by side with mongoelector 1.0.2 (makes benchmarks/.venv-1x); see docs/benchmarks.md.
bench: $(VENV)/.installed
	$(PY) benchmarks/compare.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) benchmarks/.venv-1x .mypy_cache .pytest_cache .ruff_cache
