# The two commands of the README: `make demo` (whole stack with demo traffic) and `make test`.
# Each installs what it needs into .venv first, pinned by constraints.txt.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install demo up test check format docs clean

$(BIN)/followup: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/followup

demo: install
	$(BIN)/followup up --demo

up: install
	$(BIN)/followup up

check: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/followup docs --check

test: check
	$(BIN)/pytest

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: install
	$(BIN)/followup docs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
