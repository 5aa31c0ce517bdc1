# Encore — two commands do everything on a fresh clone: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test install lint data train bench migrate clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(PY) main.py setup
	$(PY) main.py serve

test: install
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadfile -m "not serial"
	$(PY) -m pytest -q -m serial

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

migrate: install
	$(PY) main.py migrate

data: install
	$(PY) main.py data

train: install
	$(PY) main.py train --publish

# setup first: the benchmarks run on the set-up catalogue, model and index snapshots (kept when current).
bench: install
	$(PY) main.py setup
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
