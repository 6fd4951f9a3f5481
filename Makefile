# Two commands on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# Loopback-only LSL for everything started from here (tests, demo): no multicast off this machine.
export LSLAPICFG := $(CURDIR)/configs/lsl-local.cfg

.PHONY: setup demo demo-headless demo-model bench-data bench-accuracy bench-data-128 bench-accuracy-128 bench-data-256 test clean

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

# The benchmark data: 34 training subjects on real fMRI scans 0-16, and 6 held-out subjects
# (other simulated parameters) on real scans 17-22 that no training or model selection sees.
bench-data: setup
	test -d runs/sim_train || $(BIN)/rtbold simulate runs/sim_train --subjects 34 --bold-scans 0-16 --seed 0
	test -d runs/sim_heldout || $(BIN)/rtbold simulate runs/sim_heldout --subjects 6 --subject-offset 200 --bold-scans 17-22 --seed 0

# Reproduce the packaged demo model (UnEBOLT-BP tiny: ridge fit, 8 band-power pre-training epochs,
# 3 end-to-end epochs; 58 CPU-minutes on one thread, plus 7 min of simulation): train
# configs/train_demo.toml and package the float16 bundle.
demo-model: bench-data
	$(BIN)/rtbold train configs/train_demo.toml
	cp runs/train_demo/bundle.safetensors rtbold/data/demo_unebolt_bp.safetensors

# The held-out accuracy table of the README (every model on the same training data).
bench-accuracy: bench-data
	$(BIN)/python benchmarks/bench_accuracy.py --configs configs/bench/ridge.toml \
	  configs/bench/ridge_sn.toml configs/train_demo.toml configs/bench/unebolt_tiny.toml \
	  --seeds 0 --heldout runs/sim_heldout --out runs/bench

# The same benchmark at DiFuMo-128: the EEG of bench-data (same seed, same bytes) with DiFuMo-128
# targets derived from the real DiFuMo-64 scans through the DiFuMo maps (an approximation of rank
# <= 64, README "Benchmarks"). rtbold ships no maps: DIFUMO_MAPS is a folder holding the DiFuMo-64
# and -128 2 mm probabilistic maps (nilearn's fetch_atlas_difumo or templateflow have them).
DIFUMO_MAPS ?= ../shared/data/difumo/maps
MAPS_128 := --n-regions 128 --source-maps $(DIFUMO_MAPS)/difumo64_2mm_maps.nii.gz \
	--target-maps $(DIFUMO_MAPS)/difumo128_2mm_maps.nii.gz
bench-data-128: setup
	test -d runs/sim_train128 || $(BIN)/rtbold simulate runs/sim_train128 --subjects 34 --bold-scans 0-16 --seed 0 $(MAPS_128)
	test -d runs/sim_heldout128 || $(BIN)/rtbold simulate runs/sim_heldout128 --subjects 6 --subject-offset 200 --bold-scans 17-22 --seed 0 $(MAPS_128)

# DiFuMo-256 from its 3-D label volume (the 4-D 256 maps were not available here).
MAPS_256 := --n-regions 256 --source-maps $(DIFUMO_MAPS)/difumo64_2mm_maps.nii.gz \
	--target-maps $(DIFUMO_MAPS)/difumo256_2mm_argmax.nii.gz
bench-data-256: setup
	test -d runs/sim_train256 || $(BIN)/rtbold simulate runs/sim_train256 --subjects 34 --bold-scans 0-16 --seed 0 $(MAPS_256)
	test -d runs/sim_heldout256 || $(BIN)/rtbold simulate runs/sim_heldout256 --subjects 6 --subject-offset 200 --bold-scans 17-22 --seed 0 $(MAPS_256)

bench-accuracy-128: bench-data-128
	$(BIN)/python benchmarks/bench_accuracy.py --configs configs/bench128/ridge.toml \
	  configs/bench128/ridge_sn.toml configs/bench128/unebolt_bp_tiny.toml \
	  --seeds 0 --heldout runs/sim_heldout128 --out runs/bench128

test: setup
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q || { rc=$$?; \
	  [ $$rc -eq 5 ] && echo "pytest collected no tests: that is a failure" >&2; exit $$rc; }

clean:
	rm -rf $(VENV) .pytest_cache
