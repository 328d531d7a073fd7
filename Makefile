# Two commands: `make demo` (setup + the whole pipeline on SciFact) and `make test`.
# PYTHON chooses the Pyserini generation: `make test PYTHON=python3.12` sets up and tests pyserini 2.x
# in .venv312; the default python3 (3.11) gets pyserini 1.6 in .venv.
PYTHON ?= python3
VENV := $(shell PYTHON=$(PYTHON) bash scripts/setup.sh --print-venv)
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,$(VENV)/bin/python)

.PHONY: setup demo test reproduce
setup:
	PYTHON=$(PYTHON) bash scripts/setup.sh

demo: setup
	$(PY) -m splade_anserini.pipeline

# one pytest worker per core (TEST_WORKERS=0: in this process); a test module stays on one worker, with its fixtures
TEST_WORKERS ?= auto
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# every results/*.json again (`python -m bench.reproduce --list`: the commands and their expected time)
reproduce: setup
	$(PY) -m bench.reproduce $(if $(ONLY),--only $(ONLY))
