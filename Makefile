# Two commands do all setup: `make demo` and `make test`. Both install what they
# need into a local virtual environment (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench fault-injection clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@rm -rf .demo-state
	WARND_STATE_DIR=.demo-state $(BIN)/warnd --config config.toml run --once

# The report test renders HTML in headless Chromium (Debian's package; root on CI).
chromium:
	@command -v chromium >/dev/null || (apt-get update && apt-get install -y --no-install-recommends chromium)

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.detection

clean:
	rm -rf $(VENV) .demo-state .pytest_cache build *.egg-info
