# The two commands a fresh machine needs: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test bootstrap bench clean mutate mutate-quick

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	$(VENV)/bin/pspike demo

test: bootstrap
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: bootstrap
	$(PY) benchmarks/run_all.py

# mutation testing of the numerics core (docs/testing.md); not part of make test. mutate: every mutant (6-12 h
# on 2 cores); mutate-quick: a seeded sample of MUTATE_N mutants per module. Results in build/mutate/.
MUTATE_N ?= 40
MUTATE_SEED ?= 0
MUTATE_WORKERS ?= 2
MUTATE_ARGS ?=

mutate: bootstrap
	nice -n 19 $(PY) scripts/mutate.py --workers $(MUTATE_WORKERS) $(MUTATE_ARGS)

mutate-quick: bootstrap
	nice -n 19 $(PY) scripts/mutate.py --quick $(MUTATE_N) --seed $(MUTATE_SEED) --workers $(MUTATE_WORKERS) $(MUTATE_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
