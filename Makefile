# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Loopback-only LSL for everything started from here (tests, demo): no multicast off this machine.
export LSLAPICFG := $(CURDIR)/configs/lsl-local.cfg

.PHONY: setup demo demo-headless demo-model test clean

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

# Reproduce the packaged demo model (about 35 min on 2 CPU cores): simulate 18 subjects, train a
# small UnEBOLT with configs/train_demo.toml, package the float16 bundle.
demo-model: setup
	test -d runs/sim_demo || $(BIN)/rtbold simulate runs/sim_demo --subjects 18 --seed 0
	$(BIN)/rtbold train configs/train_demo.toml
	cp runs/train_demo/bundle.safetensors rtbold/data/demo_unebolt_small.safetensors

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q || { rc=$$?; \
	  [ $$rc -eq 5 ] && echo "pytest collected no tests: that is a failure" >&2; exit $$rc; }

clean:
	rm -rf $(VENV) .pytest_cache
