"""The committed .cog/openapi_schema.json follows predict.py; cog.yaml matches the requirements."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from cog_schema import SCHEMA_PATH, build_schema, render  # noqa: E402
from cog_server import cog_environment  # noqa: E402

from pixray.serving import FILE_INPUTS  # noqa: E402


def test_committed_schema_is_up_to_date():
    assert SCHEMA_PATH.read_text() == render(), "run `make schema` and commit .cog/openapi_schema.json"


def test_every_input_is_described_and_bounded():
    schema = build_schema()
    inputs = schema["components"]["schemas"]["Input"]["properties"]
    assert list(inputs) == ["prompts", "drawer", "quality", "aspect", "iterations", "seed", "display_every",
                            "init_image", *FILE_INPUTS, "make_video", "settings"]
    for name, prop in inputs.items():
        assert prop.get("description", "").strip(), f"input {name!r} has no description"
    assert inputs["drawer"]["enum"] == ["vqgan", "pixel", "fast_pixel", "fft", "line_sketch", "clipdraw",
                                       "super_resolution", "vdiff"]
    assert inputs["iterations"]["minimum"] == 1 and inputs["iterations"]["nullable"]
    assert inputs["init_image"]["format"] == "uri"
    for name in FILE_INPUTS:
        assert inputs[name].get("format", inputs[name].get("items", {}).get("format")) == "uri", name
    output = schema["components"]["schemas"]["Output"]
    assert output["x-cog-array-type"] == "iterator" and output["items"]["format"] == "uri"
    assert schema["paths"]["/predictions"]["post"]["x-cog-streaming"] is True


def test_schema_bounds_are_exactly_the_settings_bounds():
    """A value the schema admits must be one the settings admit (a seed maximum rounded through a
    float once let 2^63 through coglet's validation and fail the prediction)."""
    from pixray.settings import all_specs

    inputs = build_schema()["components"]["schemas"]["Input"]["properties"]
    specs = all_specs()
    for name, prop in inputs.items():
        if name not in specs:
            continue
        spec = specs[name]
        if spec.minimum is None and spec.maximum is None and spec.choices is None:
            continue  # e.g. display_every: text in settings ('5%'), a bounded integer as an input
        for key, bound in (("minimum", spec.minimum), ("maximum", spec.maximum)):
            assert prop.get(key) == bound, (name, key, prop.get(key), bound)
            assert bound is None or float(bound) == bound, f"{name} {key} {bound} is not exact as a float"
        if spec.choices is not None:
            assert prop["enum"] == list(spec.choices)
        assert prop.get("nullable") or "default" in prop


def test_make_serve_runs_with_cog_yamls_environment():
    environment = [f"{name}={value}" for name, value in cog_environment().items()]
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\nserve:"):].split("\n\n", 1)[0]
    assert environment and all(line in recipe.split() for line in environment)


def test_cog_yaml_points_at_the_predictor_and_pinned_requirements():
    config = yaml.safe_load((ROOT / "cog.yaml").read_text())
    assert config["run"] == "predict.py:Predictor" and config["build"]["gpu"] is True
    assert config["build"]["python_version"] == "3.11"
    assert config["build"]["python_requirements"] == "requirements.txt"
    assert re.search(r"^torch==\S+$", (ROOT / "requirements.txt").read_text(), flags=re.M)
    # Cog refuses to build a torch newer than its own table without `cuda`; it must be the CUDA the pinned
    # torch (installed here from the same requirements) was built for.
    import torch

    assert torch.version.cuda is not None, "the pinned torch is the PyPI (CUDA) build"
    assert config["build"]["cuda"] == ".".join(torch.version.cuda.split(".")[:2])
    # The image's Cog SDK is the one the tests serve predict.py with, not whichever is newest at build time.
    dev = (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert f"cog=={config['build']['sdk_version']}" in dev
    nodeps = [line for line in (ROOT / "requirements-nodeps.txt").read_text().splitlines()
              if line and not line.startswith("#")]
    assert all(any(f"--no-deps {pin}" in step for step in config["build"]["run"]) for pin in nodeps)
    json.loads(SCHEMA_PATH.read_text())


def test_the_docker_context_leaves_out_what_git_ignores_but_the_weights():
    """`cog build` sends the directory to Docker less .dockerignore: a developer's .venv (gigabytes of
    torch and CUDA), build/ or gpu-checks/ would go into every image; weights/ is meant to."""
    ignored = {line.strip("/").removesuffix("/") for line in (ROOT / ".gitignore").read_text().splitlines()
               if line and not line.startswith(("#", "!"))}
    kept_out = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert ignored - {"weights/*"} <= kept_out | {name.removeprefix("**/") for name in kept_out}, \
        ignored - kept_out
    assert not any(name.startswith(("weights", ".cog", "pixray")) for name in kept_out)
