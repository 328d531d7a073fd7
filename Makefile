# Two commands: `make demo` (setup + the whole pipeline on SciFact) and `make test`.
PY := $(if $(VIRTUAL_ENV),$(VIRTUAL_ENV)/bin/python,.venv/bin/python)

.PHONY: setup demo test
setup:
	bash scripts/setup.sh

demo: setup
	$(PY) -m splade_anserini.pipeline

test: setup
	$(PY) -m pytest -q
