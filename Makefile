# Two commands set up a fresh machine:
#   make demo   install, then run the provider and two department sites (SSO demo);
#               PORT=8000 moves it (provider on PORT, the sites and sandbox on the next ones)
#   make test   install, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PORT ?= 5000

.PHONY: demo test install install-test lint

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	npm ci --prefix tests/e2e/node --no-audit --no-fund --loglevel=error

demo: install
	$(BIN)/idp demo --port $(PORT)

lint: install-test
	$(BIN)/ruff check .

test: install-test lint
	$(BIN)/pytest -q
