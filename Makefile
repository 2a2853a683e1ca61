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
	$(VENV)/bin/ruff check src tests benchmarks docs/examples
	$(VENV)/bin/ruff format --check src tests benchmarks docs/examples

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy --strict src

check: test lint typecheck

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
