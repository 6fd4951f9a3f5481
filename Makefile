# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Loopback-only LSL for everything started from here (tests, demo): no multicast off this machine.
export LSLAPICFG := $(CURDIR)/configs/lsl-local.cfg

.PHONY: setup demo demo-headless test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

demo: setup
	$(BIN)/rtbold --lsl-config configs/lsl-local.cfg demo

demo-headless: setup
	$(BIN)/rtbold --lsl-config configs/lsl-local.cfg demo --headless

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q || { rc=$$?; \
	  [ $$rc -eq 5 ] && echo "pytest collected no tests: that is a failure" >&2; exit $$rc; }

clean:
	rm -rf $(VENV) .pytest_cache
