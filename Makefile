# keras-gen: `make demo` sets everything up and trains the `acgan-r1-ema` preset (README); `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_OUT ?= runs/demo
# Test processes (pytest-xdist): two keep both cores busy while one traces graphs or imports TensorFlow.
TEST_WORKERS ?= 2

.PHONY: setup demo test test-slow test-all bench bench-mode-collapse experiments clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/keras-gen train acgan-r1-ema --out $(DEMO_OUT) --overwrite
	@echo "Sample grids: $(DEMO_OUT)/samples/  final model: $(DEMO_OUT)/model.keras"

test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS)

test-slow: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m slow

test-all: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) -m "slow or not slow"

# Product benchmarks (benchmarks/README.md) print a Markdown table and write JSON to benchmarks/results/
# (tens of minutes on 2 CPU cores).
bench: setup
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/sampling.py
	$(PY) benchmarks/serving.py
	$(PY) benchmarks/likelihood.py
	$(PY) benchmarks/r1_cost.py
	$(PY) benchmarks/input_pipeline.py

# The full PacGAN-style table: 3 mixture presets x 10 seeds (~65 min here), then one seed of each stacked-MNIST
# preset (~3 h).
bench-mode-collapse: setup
	$(PY) benchmarks/mode_collapse.py --seeds 10
	$(PY) benchmarks/mode_collapse.py \
		--presets dcgan-stacked-mnist,pacgan-stacked-mnist,r1-stacked-mnist,r1-ema-stacked-mnist --seeds 1 --merge

# Studies (experiments/README.md) write JSON to experiments/results/. Only r1_read_order.py runs on its own
# (~3 min); stacked_digits.py reads a `mode_collapse.py --backup` folder and stacked_mnist_sweep.py trains on a
# GPU machine with PyTorch: run those by hand as experiments/README.md shows.
experiments: setup
	$(PY) experiments/r1_read_order.py

clean:
	rm -rf $(VENV) runs build *.egg-info .pytest_cache
