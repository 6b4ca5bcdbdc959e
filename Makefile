# The two commands of the README, and the rest of the project's chores.
# Each target creates the virtualenv and installs the pinned dependencies itself.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)  ## the local sandbox: real canary deployments end to end, then exit
	$(PY) -m sandbox $(ARGS)

test: $(STAMP)  ## the whole test suite (CI runs this)
	$(PY) -m ruff check bot workers sandbox tests bench
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(PY) -m ruff check bot workers sandbox tests bench
	$(PY) -m ruff format --check bot workers sandbox tests bench

bench: $(STAMP)  ## the benchmarks of docs/BENCHMARKS.md
	$(PY) -m bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
