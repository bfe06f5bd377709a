# `make demo` (a generation) and `make test` (the tests) each install what they need first.
VENV ?= .venv
# The interpreter the venv is made from (3.11 or newer: numpy 2.4 and others need it).
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test lint bench demo weights serve schema clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt requirements-dev.txt requirements-ray.txt requirements-ui.txt \
		pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pixray needs Python 3.11 or newer; $(PYTHON) is " + sys.version.split()[0] + ": make install PYTHON=python3.12 (or any 3.11+)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -r requirements-dev.txt -r requirements-ray.txt \
		-r requirements-ui.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# One worker process per core, at most 4 (each holds its own models); a test file's tests stay together in one
# worker, so its module's fixtures (a live server, a pool of demo workers) start once. TEST_WORKERS=0: one process.
TEST_WORKERS ?= auto
test: install
	$(PY) -m pytest -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

lint: install
	$(VENV)/bin/ruff check .

# Offline generation with the shipped shapes-world CLIPs (no weights to download); prints the PNG path.
# The caption, with the same scene in each other shape as a negative prompt (see the README).
DEMO_PROMPTS := a red circle on a blue background | a red square on a blue background:-0.15 | \
	a red triangle on a blue background:-0.15 | a red cross on a blue background:-0.15
demo: install
	$(VENV)/bin/pixray --config pixray/demo/shapes.yaml --drawer pixel --clip_models shapes-demo,shapes-demo-rn \
		--prompts "$(DEMO_PROMPTS)" --outdir outputs/demo_%SEQ%

# The default run's models (ViT-B/32, ViT-B/16, imagenet_f16_16384) into ./weights (the checkout's), or
# WEIGHTS="name ..." (CLIP models, VQGAN models or file names); resumable, checksum-verified.
weights: install
	$(PY) -m pixray.weights download $(WEIGHTS)

# The real Cog HTTP server on 127.0.0.1:$(PORT) without Docker. The venv's bin comes first on PATH
# because coglet starts its worker with a bare `python`.
PORT ?= 5000
serve: install  # MALLOC_ARENA_MAX: cog.yaml's environment, as in the image
	PATH="$(abspath $(VENV))/bin:$$PATH" COG_PREDICT_TYPE_STUB=predict.py:Predictor PORT=$(PORT) \
		MALLOC_ARENA_MAX=1 $(PY) -m cog.server.http --host 127.0.0.1

# Regenerate .cog/openapi_schema.json from predict.py (a test fails when it is out of date).
schema: install
	$(PY) scripts/cog_schema.py > .cog/openapi_schema.json

bench: install
	$(PY) bench/benchmark.py --drawer fast_pixel --quality normal
	$(PY) bench/benchmark.py --drawer pixel --quality normal
	$(PY) bench/benchmark.py --drawer fft --quality normal
	$(PY) bench/benchmark.py --drawer vqgan --quality normal

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
