"""The model cache: models declared by the parts that load them, reuse, and a memory budget."""

from pathlib import Path

import pytest
import torch
from torch import nn

import pixray.model_cache
import pixray.serving
import pixray.weights
from pixray.model_cache import (
    ModelCache,
    declared_models,
    default_model_memory,
    models_for,
    parse_memory,
    weight_files,
)
from pixray.runtime import usable_memory
from pixray.settings import SettingsError, build_settings


def test_parts_declare_their_models_and_no_shared_code_names_them():
    declared = declared_models()
    assert {"imagenet_f16_16384", "wikiart_16384", "vgg16", "ava_vit_b_16_linear"} <= set(declared)
    assert weight_files("vgg16") == ["vgg16-397923af.pth"]
    assert weight_files("ava_vit_b_16_linear") == ["ava_vit_b_16_linear.pth"]
    settings = build_settings({"drawer": "pixel", "custom_loss": "style,aesthetic:2,saturation",
                               "filters": "tiler"})
    assert models_for(settings) == ["ViT-B/32", "ViT-B/16", "vgg16", "ava_vit_b_16_linear"]
    custom = build_settings({"vqgan_config": __file__, "vqgan_checkpoint": __file__, "quality": "draft"})
    assert models_for(custom) == ["ViT-B/16"]  # draft's CLIP; a VQGAN by path: nothing to fetch by name
    for module in (pixray.model_cache, pixray.serving, pixray.weights):
        source = Path(module.__file__).read_text()
        for part in ("drawers.vqgan", "losses.style", "losses.aesthetic", "VQGAN_MODELS", "shared_model"):
            assert part not in source, (module.__name__, part)


def test_an_unknown_name_lists_the_models_and_suggests_files_too():
    with pytest.raises(SettingsError) as info:
        weight_files("ViT-B-32.p")
    message = str(info.value)
    assert "(did you mean 'ViT-B-32.pt'?)" in message and "imagenet_f16_16384" in message
    assert "vqgan_imagenet_f16_16384.ckpt" not in message  # files: `python -m pixray.weights list`
    assert "python -m pixray.weights list" in message


def test_the_least_recently_used_models_are_dropped_past_the_budget(tmp_path):
    layer_bytes = 100 * 100 * 4 + 100 * 4
    cache = ModelCache(torch.device("cpu"), tmp_path, memory=int(2.5 * layer_bytes))
    first = cache.get("a", lambda: nn.Linear(100, 100))
    cache.get("b", lambda: nn.Linear(100, 100))
    assert cache.get("a", lambda: nn.Linear(1, 1)) is first  # kept, and now the most recently used
    cache.get("c", lambda: nn.Linear(100, 100))
    assert cache.evictions == 1 and cache.held_bytes() == 2 * layer_bytes
    assert cache.get("a", lambda: nn.Linear(1, 1)) is first and cache.loads == 3  # b went, not a
    cache.get("b", lambda: nn.Linear(100, 100))
    assert cache.loads == 4
    big = ModelCache(torch.device("cpu"), tmp_path, memory=10)
    big.get("x", lambda: nn.Linear(100, 100))  # the one asked for stays, whatever its size
    assert big.get("x", lambda: nn.Linear(1, 1)).in_features == 100 and big.evictions == 0


@pytest.mark.parametrize("text, expected", [("8G", 8 << 30), ("512M", 512 << 20), ("1.5GiB", 3 << 29),
                                            ("1000", 1000), (" 2 gb ", 2 << 30)])
def test_model_memory_amounts(text, expected):
    assert parse_memory(text) == expected


@pytest.mark.parametrize("files, membership, limited", [
    ({}, "", False),  # no cgroup files: the machine's memory
    ({"memory.max": "max\n"}, "0::/\n", False),  # cgroup v2, no limit
    ({"memory.max": "4294967296\n"}, "0::/\n", True),  # v2: a container limited to 4 GiB
    ({"pod/memory.max": "4294967296\n", "memory.max": "max\n"}, "0::/pod\n", True),  # the process's own group
    ({"memory/memory.limit_in_bytes": "9223372036854771712\n"}, "4:memory:/\n", False),  # v1's "no limit"
    ({"memory/memory.limit_in_bytes": "4294967296\n"}, "4:memory:/\n", True),  # v1, 4 GiB
    ({"memory/docker/a1/memory.limit_in_bytes": "4294967296\n"}, "4:memory:/docker/a1\n", True),
])
def test_a_cpu_servers_model_budget_is_half_of_its_containers_memory(tmp_path, monkeypatch, files, membership,
                                                                     limited):
    """A server in a container sees the host's memory in SC_PHYS_PAGES; half of that, as a budget,
    would let it grow past its container's limit and be killed."""
    cgroups, membership_file = tmp_path / "cgroup", tmp_path / "membership"
    for name, text in files.items():
        (cgroups / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroups / name).write_text(text)
    membership_file.write_text(membership)
    physical = usable_memory(tmp_path / "none", tmp_path / "none")
    expected = min(4 << 30, physical) if limited else physical
    assert usable_memory(cgroups, membership_file) == expected
    monkeypatch.setattr(pixray.model_cache, "usable_memory", lambda: usable_memory(cgroups, membership_file))
    assert default_model_memory(torch.device("cpu")) == expected // 2


def test_memory_the_os_does_not_tell_is_0_and_a_run_takes_small_passes(tmp_path, monkeypatch, small_settings,
                                                                       tiny_perceptor):
    """Without os.sysconf (Windows), the memory is a cgroup's limit where there is one, else 0 (unknown),
    and a CPU run sizes its passes as on a small machine instead of failing."""
    import os

    import pixray.engine

    monkeypatch.delattr(os, "sysconf")
    assert usable_memory(tmp_path / "none", tmp_path / "none") == 0
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "memory.max").write_text("4294967296\n")
    (tmp_path / "membership").write_text("0::/\n")
    assert usable_memory(tmp_path / "cgroup", tmp_path / "membership") == 4 << 30
    nowhere = tmp_path / "none"
    monkeypatch.setattr(pixray.engine, "usable_memory", lambda: usable_memory(nowhere, nowhere))
    run = pixray.generate({**small_settings, "precision": "bfloat16"}, perceptors=[tiny_perceptor])
    assert run.pass_positions == 12 * 197


def test_a_bad_model_memory_is_refused_at_setup(monkeypatch, tmp_path):
    from pixray.serving import Service

    with pytest.raises(SettingsError, match=r"\$PIXRAY_MODEL_MEMORY: 'lots' is not an amount of memory"):
        parse_memory("lots")
    monkeypatch.setenv("PIXRAY_MODEL_MEMORY", "lots")
    monkeypatch.setenv("PIXRAY_PRELOAD", "shapes-demo")
    monkeypatch.setenv("PIXRAY_OUTPUT_DIR", str(tmp_path))
    with pytest.raises(SettingsError, match="PIXRAY_MODEL_MEMORY"):
        Service.from_environment()


def test_preloading_a_declared_model_is_what_its_part_then_uses(tmp_path, monkeypatch):
    import pixray.weights
    from pixray.init_images import ImageReader
    from pixray.losses import LOSSES
    from pixray.losses.style import Vgg16Features
    from pixray.resources import Resources

    monkeypatch.setattr(pixray.weights, "verify", lambda path, entry: None)  # random stand-in weights
    layers = Vgg16Features.empty().layers
    torch.save({f"features.{key}": value.zero_() for key, value in layers.state_dict().items()},
               tmp_path / "vgg16-397923af.pth")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "style.png")
    cache = ModelCache(torch.device("cpu"), tmp_path)
    cache.preload(["vgg16"])
    assert cache.loads == 1
    settings = build_settings({"custom_loss": "style", "style_file": str(tmp_path / "style.png")})
    options = settings.section("style")
    LOSSES.lookup("style").create(options, Resources(cache, ImageReader()))
    assert cache.loads == 1


def test_a_cache_made_from_texts_as_the_readme_writes_it_serves_runs(tmp_path, monkeypatch):
    """`pixray.ModelCache("cpu", "weights")`: a device and a directory as texts (the README's form), or
    no directory ($PIXRAY_WEIGHTS_DIR, else as a run's own)."""
    import pixray

    cache = pixray.ModelCache("cpu", str(tmp_path / "w"))
    assert cache.device == torch.device("cpu") and cache.weights_dir == tmp_path / "w"
    run = pixray.generate({"prompts": "a red circle", "drawer": "fast_pixel", "clip_models": ["shapes-demo"],
                           "size": [16, 16], "iterations": 1, "outdir": str(tmp_path / "o")}, models=cache)
    assert run.final_image().size == (16, 16) and cache.loads == 1
    monkeypatch.setenv("PIXRAY_WEIGHTS_DIR", str(tmp_path / "env"))
    assert pixray.ModelCache("cpu").weights_dir == tmp_path / "env"
