# Everything a fresh machine needs, then the job. `make train ARGS="model=lazy_cnn"`, `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_DATA := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup data train test test-quick lint bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

# Debian's package where we may install it; otherwise lazytrain downloads on first use.
data:
	@if [ ! -f $(SYSTEM_DATA) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; fi

setup: $(VENV)/.installed data

train: setup
	$(PY) scripts/train.py $(ARGS)

# One worker per core, up to 4 (pytest-xdist; conftest.py shares the cores out among them).
PARALLEL := -n auto --maxprocesses 4 --dist worksteal

test: setup
	$(PY) -m pytest $(PARALLEL) $(ARGS)

test-quick: setup
	$(PY) -m pytest $(PARALLEL) -m "not slow" $(ARGS)

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(PY) scripts/bench.py $(ARGS)
