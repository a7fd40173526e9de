# tokens2chips: `make run` (build the warehouse from the embedded data) and `make test`.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export DAGSTER_HOME ?= $(CURDIR)

.PHONY: install run test dev clean lock bench

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/tokens2chips run

# two pytest workers (pytest-xdist); --dist loadfile keeps a file's tests, and so its module-scoped
# end-to-end run, on one worker. TEST_WORKERS=0 runs in one process.
TEST_WORKERS ?= 2
test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

dev: install
	exec $(BIN)/python -m pipelines.dev

bench: install
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	$(BIN)/python bench/forecast_bench.py

lock: install
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^tokens2chips' | grep -viE '^(adagio|cloudpickle|coreforecast|fugue|statsforecast|triad|utilsforecast)==' > requirements.lock.new
	(echo '# Fully pinned environment (pip freeze of a working install). Regenerate with `make lock`.'; cat requirements.lock.new) > requirements.lock
	rm requirements.lock.new

clean:
	rm -rf var .pytest_cache
