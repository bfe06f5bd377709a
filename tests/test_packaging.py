"""What `pip install` of the package installs: every runtime pin, taming-transformers included."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent


def _pins(name: str) -> set[str]:
    lines = (ROOT / name).read_text().splitlines()
    return {str(Requirement(line)) for line in lines if line.strip() and not line.startswith("#")}


def test_pip_install_declares_every_runtime_pin_and_taming():
    """A pip user (`pip install .` or a git URL, without the Makefile) gets a complete install:
    the package's metadata requires requirements.txt and taming-transformers, which the default
    vqgan drawer imports. (`make install` puts the same pins in place, taming with --no-deps.)"""
    declared = {str(Requirement(r)) for r in importlib.metadata.requires("pixray") or []}
    assert _pins("requirements.txt") <= declared
    assert _pins("requirements-nodeps.txt") == {"taming-transformers-rom1504==0.0.6"}
    assert _pins("requirements-nodeps.txt") <= declared


def test_the_taming_modules_the_vqgan_drawer_uses_import_without_lightning():
    from taming.modules.diffusionmodules.model import Decoder, Encoder  # noqa: F401
    from taming.modules.vqvae.quantize import GumbelQuantize, VectorQuantizer2  # noqa: F401

    for name in ("pytorch_lightning", "lightning", "omegaconf"):
        assert importlib.util.find_spec(name) is None, f"{name} is installed; make install leaves it out"


def test_pixrays_readme_command_runs_from_a_checkout_and_python_m_pixray_is_the_command(tmp_path):
    """`python pixray.py --drawer=pixel --prompt=sunrise --outdir sunrise01`, Pixray's README's first
    command, from the checkout's root (that file's directory, as `python` puts it first on the path;
    here the run is in tmp_path); `python -m pixray --version` names the installed version; and
    `import pixray` from the checkout's root finds the package, not that file."""
    version = f"pixray {importlib.metadata.version('pixray')}"
    out = subprocess.run([sys.executable, str(ROOT / "pixray.py"), "--drawer=pixel", "--prompt=sunrise",
                          "--clip_models", "shapes-demo", "--size", "16", "16", "--iterations", "1",
                          "--outdir", "sunrise01", "--quiet"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "sunrise01/output.png" and (tmp_path / "sunrise01" / "output.png").is_file()
    out = subprocess.run([sys.executable, "-m", "pixray", "--version"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert (out.returncode, out.stdout.strip()) == (0, version)
    assert importlib.util.find_spec("pixray").origin == str(ROOT / "pixray" / "__init__.py")


def test_the_readmes_offline_python_examples_run(tmp_path, monkeypatch):
    """Each ```python block of the README that uses the shapes-world CLIP (so needs no downloads) runs as
    written, in a fresh directory, with its iterations cut to keep the suite short. The generate example
    once left out its drawer, so it asked for the default vqgan's weights."""
    import re

    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    offline = [b for b in blocks if "shapes-demo" in b]
    assert len(offline) >= 2
    monkeypatch.chdir(tmp_path)
    for block in offline:
        code = re.sub(r"iterations=\d+", "iterations=2", block)
        exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    assert (tmp_path / "out.png").is_file() and list(tmp_path.glob("outputs/*/output.png"))
