# Two commands do all setup: `make demo` and `make test`. Both install what they
# need into a local virtual environment (.venv) on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv bench load fault-injection check-unit systemd-tools clean chromium

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
	@command -v chromium >/dev/null || (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null)

test: $(STAMP) chromium check-unit
	$(BIN)/python -m pytest -q

# systemd-analyze checks the unit file; installed here when missing and we are
# root on a Debian-like system, otherwise check-unit fails and says why.
systemd-tools:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing systemd (for systemd-analyze)"; \
	    (apt-get install -y -qq systemd >/dev/null 2>&1 || \
	     (apt-get update -qq && apt-get install -y -qq systemd >/dev/null)); \
	  else \
	    echo "systemd-analyze is missing: install the systemd package (needs root)" >&2; exit 1; \
	  fi; }

check-unit: $(STAMP) systemd-tools
	$(BIN)/python scripts/check_unit.py

# SIGKILL the daemon at random moments, 50 times, then check the store and the deliveries.
fault-injection: $(STAMP)
	$(BIN)/python scripts/fault_injection.py --kills 50

# Cycle time and memory for a few hundred sources and tens of thousands of series.
load: $(STAMP)
	$(BIN)/python -m benchmarks.load

bench: $(STAMP)
	$(BIN)/python -m benchmarks.detection

clean:
	rm -rf $(VENV) .demo-state .pytest_cache build *.egg-info
