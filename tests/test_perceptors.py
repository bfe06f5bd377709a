from pathlib import Path

import pytest
import torch
from conftest import tiny_clip

from pixray.model_cache import ModelCache
from pixray.perceptors import (
    CheckpointError,
    Perceptor,
    build_clip,
    checkpoint_path,
    load_clip_checkpoint,
    openai_state_dict,
)
from pixray.settings import SettingsError
from pixray.weights import WEIGHTS_ENV, MissingWeightsError, weights_dir


def _same_embeddings(a, b):
    pa, pb = Perceptor("a", a), Perceptor("b", b)
    texts = ["a red circle on a blue background", "a cat"]
    images = torch.rand(2, 3, pa.input_resolution, pa.input_resolution)
    return (torch.allclose(pa.encode_text(texts), pb.encode_text(texts), atol=2e-3)
            and torch.allclose(pa.encode_image(images), pb.encode_image(images), atol=2e-3))


@pytest.mark.parametrize("kwargs", [
    {},
    {"context_length": 20},
    {"image_size": 48},
    {"resnet": True, "image_size": 64, "context_length": 33},
])
def test_openai_layout_round_trip(tmp_path: Path, kwargs):
    model = tiny_clip(**kwargs)
    path = tmp_path / "m.pt"
    torch.save(openai_state_dict(model), path)
    before = torch.get_rng_state()
    loaded = load_clip_checkpoint(path)
    assert torch.equal(torch.get_rng_state(), before)  # no random weights drawn to be overwritten
    p = Perceptor("m", loaded)
    assert p.context_length == kwargs.get("context_length", 77)
    assert p.input_resolution == kwargs.get("image_size", 32)
    assert _same_embeddings(model, loaded)


def test_the_loaded_tensors_become_the_networks_weights_uncopied():
    model = tiny_clip()
    state = openai_state_dict(model)  # float32 copies
    built = build_clip(state)
    # A checkpoint's tensors are never held twice while it loads (its float32 conversions included).
    assert all(value.data_ptr() == state[key].data_ptr() for key, value in built.state_dict().items())
    assert all(isinstance(p, torch.nn.Parameter) and p.requires_grad for p in built.parameters())
    assert _same_embeddings(model, built)


def test_half_precision_wrapped_and_prefixed_state_dicts(tmp_path: Path):
    model = tiny_clip()
    state = {f"module.{k}": v for k, v in openai_state_dict(model, half=True).items()}
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": state, "epoch": 3}, path)
    assert _same_embeddings(model, load_clip_checkpoint(path))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # writing the archive uses jit.script/save
def test_torchscript_archive(tmp_path: Path):
    model = tiny_clip()

    class Holder(torch.nn.Module):  # an archive whose state dict is the CLIP's, like OpenAI's files
        def __init__(self):
            super().__init__()
            for name, child in model.named_children():
                self.add_module(name, child)
            for name, param in model.named_parameters(recurse=False):
                self.register_parameter(name, param)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = tmp_path / "jit.pt"
    torch.jit.save(torch.jit.script(Holder()), str(path))
    assert _same_embeddings(model, load_clip_checkpoint(path))


def test_bad_files_are_named(tmp_path: Path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        load_clip_checkpoint(junk)
    partial = tmp_path / "partial.pt"
    torch.save({"visual.proj": torch.zeros(2, 2)}, partial)
    with pytest.raises(CheckpointError, match=r"partial\.pt"):
        load_clip_checkpoint(partial)


def test_perceptor_is_frozen_and_normalised(tiny_perceptor):
    assert not any(p.requires_grad for p in tiny_perceptor.parameters())
    tiny_perceptor.train()
    assert not tiny_perceptor.model.training
    e = tiny_perceptor.encode_image(torch.rand(3, 3, 32, 32))
    assert torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_missing_weight_names_file_directory_and_source(tmp_path: Path):
    with pytest.raises(MissingWeightsError) as info:
        checkpoint_path("ViT-B/32", tmp_path)
    message = str(info.value)
    assert "ViT-B-32.pt" in message and str(tmp_path) in message and "https://" in message


def test_unknown_model_lists_valid_names(tmp_path: Path):
    with pytest.raises(SettingsError) as info:
        checkpoint_path("ViT-B/33", tmp_path)
    assert "'ViT-B/33'" in str(info.value) and "ViT-B/32" in str(info.value) and "RN50" in str(info.value)


def test_catalog_file_failing_its_checksum_is_not_used(tmp_path: Path, tiny_checkpoint: Path):
    (tmp_path / "RN50.pt").write_bytes(tiny_checkpoint.read_bytes())
    with pytest.raises(CheckpointError) as info:
        checkpoint_path("RN50", tmp_path)
    assert "RN50.pt" in str(info.value) and "checksum" in str(info.value)
    assert "python -m pixray.weights download RN50.pt" in str(info.value)


def test_weights_dir_precedence(monkeypatch, tmp_path: Path):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "weights").mkdir()
    assert weights_dir() == Path("weights")  # a checkout's, or the Cog image's
    # Elsewhere, the user's cache: runs started in any folder share one copy of what they fetch.
    (tmp_path / "weights").rmdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert weights_dir() == tmp_path / "cache" / "pixray" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert weights_dir() == tmp_path / "home" / ".cache" / "pixray" / "weights"
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    assert weights_dir() == tmp_path
    assert weights_dir("/elsewhere") == Path("/elsewhere")


def test_cache_loads_each_model_once(tiny_checkpoint: Path, tmp_path: Path):
    cache = ModelCache(torch.device("cpu"), tmp_path)
    first = cache.perceptors([str(tiny_checkpoint)])
    again = cache.perceptors([str(tiny_checkpoint), str(tiny_checkpoint)])
    assert cache.loads == 1 and again[0] is first[0] and again[1] is first[0]


def test_a_prompt_longer_than_the_model_reads_is_cut_and_said(tiny_perceptor, caplog):
    # open_clip's tokenizer cuts it without a word; Pixray's stopped. Now a warning names it.
    length = tiny_perceptor.context_length
    long_text = " ".join(["red"] * (length + 5))
    with caplog.at_level("WARNING", logger="pixray.perceptors.perceptor"):
        embeddings = tiny_perceptor.encode_text([long_text, "a red circle"])
    assert embeddings.shape[0] == 2 and torch.isfinite(embeddings).all()
    (record,) = caplog.records
    assert f"is {length + 7} tokens long, more than tiny reads ({length}, its start and end marks" in \
        record.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="pixray.perceptors.perceptor"):
        tiny_perceptor.encode_text([" ".join(["red"] * (length - 2))])  # fits exactly with its two marks
    assert caplog.records == []
