# Two commands set everything up on a fresh machine:
#   make demo   - install, then generate a toy video with capture, render an overlay and a segmentation
#   make test   - install (with dev tools and Debian's chromium for the browser test), then run the test suite
# `.ci/run` calls `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

$(BIN)/attnscope: pyproject.toml requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@

.PHONY: install demo test chromium lint
install: $(BIN)/attnscope

demo: install
	$(BIN)/attnscope generate "a white triangle moving left and a green square moving up" -w triangle -w square \
	  --seed 0 --out runs/demo --overwrite --self-prop
	$(BIN)/attnscope render runs/demo -w triangle
	$(BIN)/attnscope render runs/demo -w triangle -w square --kind segmentation

chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed; the browser test will be skipped"

test: install chromium
	$(BIN)/ruff check src tests scripts
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check src tests scripts
