# Two commands do all setup: `make demo` and `make test`. Each installs what it
# needs on first use, at the versions pinned in constraints.txt (the lock):
#   .venv      the product only (runtime dependencies): `make demo`, `.venv/bin/warnd`
#   .venv-dev  the product with the test and benchmark extras: `make test`, `make bench`
# `make lock` adds what pyproject.toml newly asks for to constraints.txt and keeps
# every other pin; `make lock-upgrade` moves every pin to the newest release the
# ranges allow. Either way: review `git diff constraints.txt`, then `make test`.
PYTHON   ?= python3
VENV     ?= .venv
DEV      ?= .venv-dev
LOCK     := constraints.txt
PIPTOOLS := pip-tools==7.6.2
BIN      := $(VENV)/bin
DEVBIN   := $(DEV)/bin
PIP_Q    := --quiet --disable-pip-version-check
DEV_EXTRAS := [test,bench]

.PHONY: demo test venv dev bench load fault-injection check-unit systemd-tools clean chromium lock lock-upgrade

# A venv is made anew whenever the lock or pyproject.toml changes, so it holds
# exactly what the lock says and nothing left over from an earlier install.
# The build backend comes from the lock too (no build isolation).
define make_venv
	rm -rf $(1)
	$(PYTHON) -m venv $(1)
	$(1)/bin/pip install $(PIP_Q) -c $(LOCK) pip setuptools wheel
	$(1)/bin/pip install $(PIP_Q) --no-build-isolation -c $(LOCK) -e '.$(2)'
	touch $(1)/.installed
endef

$(VENV)/.installed: pyproject.toml $(LOCK)
	$(call make_venv,$(VENV),)

$(DEV)/.installed: pyproject.toml $(LOCK)
	$(call make_venv,$(DEV),$(DEV_EXTRAS))

venv: $(VENV)/.installed
dev: $(DEV)/.installed

demo: $(VENV)/.installed
	@rm -rf .demo-state
	WARND_STATE_DIR=.demo-state $(BIN)/warnd --config config.toml run --once

lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install $(PIP_Q) $(PIPTOOLS)
	CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile --quiet --all-extras --all-build-deps --allow-unsafe \
	  --strip-extras --no-emit-index-url --no-emit-find-links --annotation-style=line \
	  $(LOCK_FLAGS) -o $(LOCK) pyproject.toml
	rm -rf .venv-lock
	@echo "constraints.txt resolved: review 'git diff constraints.txt', then make test"

lock-upgrade:
	$(MAKE) lock LOCK_FLAGS=--upgrade

# Browser tests use Debian's chromium; installing it needs root (apt-get).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium (Debian package, for the browser tests)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	  else \
	    echo "chromium is missing: install Debian's chromium package (needs root)" >&2; exit 1; \
	  fi; }

# The suite runs in one process more than the machine has cores (pytest-xdist), at most
# four: each test makes its own store, ports and state folder, so none waits on another,
# and a test waiting on a real server or process leaves its core to the others (on two
# cores, three processes take about a tenth less time than two). PYTEST_ARGS adds
# options, e.g. `make test PYTEST_ARGS="-n 0 tests/test_config.py"` for one file in one process.
PYTEST_ARGS ?=
TEST_WORKERS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ "$$n" -ge 4 ] && echo 4 || echo $$((n + 1)))
test: $(DEV)/.installed chromium check-unit
	$(DEVBIN)/python -m pytest -q -n $(TEST_WORKERS) $(PYTEST_ARGS)

# systemd-analyze checks the unit file; installed here when missing and we are
# root on a Debian-like system, otherwise check-unit fails and says why.
systemd-tools:
	@command -v systemd-analyze >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing systemd (for systemd-analyze)"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    (apt-get install -y -qq systemd >/dev/null 2>&1 || \
	     (apt-get update -qq && apt-get install -y -qq systemd >/dev/null)); \
	  else \
	    echo "systemd-analyze is missing: install the systemd package (needs root)" >&2; exit 1; \
	  fi; }

check-unit: $(DEV)/.installed systemd-tools
	$(DEVBIN)/python scripts/check_unit.py

# SIGKILL the daemon at random moments, 50 times, then check the store and the deliveries.
fault-injection: $(DEV)/.installed
	$(DEVBIN)/python scripts/fault_injection.py --kills 50

# Cycle time and memory for a few hundred sources and tens of thousands of series.
load: $(DEV)/.installed
	$(DEVBIN)/python -m benchmarks.load

bench: $(DEV)/.installed
	$(DEVBIN)/python -m benchmarks.detection

clean:
	rm -rf $(VENV) $(DEV) .venv-lock .demo-state .pytest_cache build *.egg-info
