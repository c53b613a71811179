# linksim — set-up and the two entry points (see README.md).
#   make demo   create .venv, install linksim, run the cliff-vs-smooth scenario (DeepJSCC vs. BPG + LDPC) on the bundled photos
#   make test   create .venv, install linksim, run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup demo test test-slow bench clean-venv

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel numpy
	# pyldpc ships only as an sdist whose build imports numpy: build it against the numpy above.
	$(BIN)/python -m pip install --no-build-isolation "pyldpc>=0.7.9"
	$(BIN)/python -m pip install -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

demo: setup
	$(BIN)/linksim run scenarios/cliff_vs_smooth.yaml

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

clean-venv:
	rm -rf $(VENV)
