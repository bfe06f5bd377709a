# `make demo` (a generation) and `make test` (the tests) each install what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint bench demo clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

# Offline generation with the shipped shapes-world CLIP (no weights to download); prints the PNG path.
demo: install
	$(VENV)/bin/pixray --config pixray/demo/shapes.yaml --drawer pixel --clip_models shapes-demo \
		--prompts "a red circle on a blue background" --outdir outputs/demo_%SEQ%

bench: install
	$(PY) bench/benchmark.py --drawer fast_pixel --quality normal
	$(PY) bench/benchmark.py --drawer pixel --quality normal

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
