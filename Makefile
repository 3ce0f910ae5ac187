# shoal — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# extra options for `python -m shoal_run`, e.g. RUN_ARGS="--api-port 8001"
RUN_ARGS ?=

.PHONY: venv system-packages run demo test test-fast lint typecheck bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "shoal needs Python 3.11 or newer (found: $$($(PYTHON) --version))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || \
		{ echo "python venv module missing: apt-get install python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,piper]'
	@touch $(STAMP)

venv: $(STAMP)

# Debian packages the tests drive (a browser, epubcheck): installed when missing.
system-packages:
	@tools/system-packages.sh

# The whole stack in the foreground (Redis, S3, local_tts, API, one worker); Ctrl-C stops it.
run: venv
	$(BIN)/python -m shoal_run run $(RUN_ARGS)

# The same stack, one narration through the API into out/, then everything stops.
demo: venv
	$(BIN)/python -m shoal_run demo $(RUN_ARGS)

test: venv system-packages
	$(BIN)/python -m pytest -n 2 tests

# The pure tests only (protocol, segmentation, audio, books, models, retry policy):
# no Redis, no servers, no subprocesses, nothing marked slow; under a minute.
test-fast: venv
	$(BIN)/python -m pytest -n 2 -m "not integration and not slow" tests

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: venv
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
