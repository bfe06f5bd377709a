"""The vqgan drawer on tiny checkpoints written in taming's real formats (config YAML + Lightning .ckpt)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn
from uninstalled_classes import class_of_an_uninstalled_library

import pixray
from pixray.cli import main
from pixray.drawers.vqgan import VqganDrawer
from pixray.drawers.vqgan_model import GUMBEL, NET2NET, VQGAN, VQMODEL, load_vqgan, quantise
from pixray.frozen_convolution import FrozenConv2d
from pixray.model_cache import ModelCache
from pixray.settings import build_settings
from pixray.weights import CheckpointError, MissingWeightsError

# GroupNorm(32) in taming's blocks needs channels that are multiples of 32.
TINY = {"embed_dim": 4, "n_embed": 64, "ddconfig": {
    "double_z": False, "z_channels": 4, "resolution": 16, "in_channels": 3, "out_ch": 3, "ch": 32,
    "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [8], "dropout": 0.0}}
LOSS = {"target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
        "params": {"disc_start": 0, "codebook_weight": 1.0}}


def _smooth_images(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """(n,3,size,size) in [-1,1]: 2x2 random colours, bilinearly blended."""
    corners = torch.rand(n, 3, 2, 2, generator=generator)
    return F.interpolate(corners, size=(size, size), mode="bilinear") * 2 - 1


def _train_briefly(model: VQGAN, steps: int = 60) -> None:
    """A few Adam steps of reconstruction + codebook loss: enough to beat noise, ~2 s on one core."""
    model.train().requires_grad_(True)
    optimiser = torch.optim.Adam(model.parameters(), 3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = _smooth_images(8, 8, generator)
        z = model.quant_conv(model.encoder(x))
        nearest = quantise(z, model.codebook).detach()
        flat = z.detach().movedim(1, -1)[..., None, :]
        codes = model.codebook[(flat - model.codebook).pow(2).sum(-1).argmin(-1)]
        loss = ((model.decode(quantise(z, model.codebook)) - x).pow(2).mean()
                + (codes.movedim(-1, 1) - z.detach()).pow(2).mean() + 0.25 * (z - nearest).pow(2).mean())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval().requires_grad_(False)


def write_checkpoint(directory: Path, name: str, target: str = VQMODEL,
                     train: bool = False) -> tuple[Path, Path]:
    """``name``.yaml + ``name``.ckpt as taming writes them (Lightning keys, loss.* weights included)."""
    torch.manual_seed(0)
    params = {**TINY, "lossconfig": LOSS}
    model = VQGAN(TINY, gumbel=target == GUMBEL)
    if train:
        _train_briefly(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["loss.discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4)
    config = {"model": {"base_learning_rate": 4.5e-6, "target": target, "params": params}}
    if target == NET2NET:
        config["model"]["params"] = {"first_stage_config": {"target": VQMODEL, "params": params},
                                     "transformer_config": {"target": "taming.modules.transformer.GPT"}}
        state = {f"first_stage_model.{k}": v for k, v in state.items()}
        state["transformer.tok_emb.weight"] = torch.randn(64, 8)
    config_path, ckpt_path = directory / f"{name}.yaml", directory / f"{name}.ckpt"
    config_path.write_text(yaml.safe_dump(config))
    torch.save({"epoch": 3, "global_step": 1000, "pytorch-lightning_version": "1.0.8", "state_dict": state},
               ckpt_path)
    return config_path, ckpt_path


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> tuple[Path, Path]:
    return write_checkpoint(tmp_path_factory.mktemp("vqgan"), "vqgan_tiny", train=True)


@pytest.fixture(scope="module")
def tiny_model(tiny_files) -> VQGAN:
    return load_vqgan(*tiny_files)


def _drawer(model: VQGAN, width: int = 40, height: int = 24) -> VqganDrawer:
    return VqganDrawer(build_settings({}).section("vqgan"), width, height, model)


@pytest.mark.parametrize("target", [VQMODEL, GUMBEL, NET2NET])
def test_each_checkpoint_kind_loads_with_its_weights(tmp_path, target):
    config, ckpt = write_checkpoint(tmp_path, "m", target)
    before = torch.get_rng_state()
    model = load_vqgan(config, ckpt)
    assert torch.equal(torch.get_rng_state(), before)  # no random weights drawn to be overwritten
    saved = torch.load(ckpt)["state_dict"]
    prefix = "first_stage_model." if target == NET2NET else ""
    assert all(torch.equal(value, saved[prefix + key]) for key, value in model.state_dict().items())
    assert model.factor == 2 and model.codebook.shape == (64, 4) and model.gumbel == (target == GUMBEL)
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    # The decoder's gradient reaches only the latent: its convolutions keep no input for it.
    assert all(type(m) is FrozenConv2d for m in (*model.decoder.modules(), model.post_quant_conv)
               if isinstance(m, nn.Conv2d))
    latent = model.encode(torch.rand(1, 3, 16, 24) * 2 - 1)
    assert latent.shape == (1, 4, 8, 12)
    assert model.decode(latent).shape == (1, 3, 16, 24)


def test_the_network_keeps_its_weights_when_the_file_is_rewritten_in_place(tmp_path, tiny_files):
    # The file is mapped while it loads; the network holds copies, so a file overwritten afterwards
    # (cp onto it: cut short, then written) neither changes it nor faults it.
    config, ckpt = tiny_files
    path = tmp_path / "m.ckpt"
    path.write_bytes(ckpt.read_bytes())
    model = load_vqgan(config, path)
    saved = torch.load(ckpt)["state_dict"]
    with path.open("r+b") as file:
        file.truncate(0)
        file.write(b"\0" * 64)
    assert all(torch.equal(value, saved[key]) for key, value in model.state_dict().items())
    assert torch.isfinite(model.decode(torch.rand(1, 4, 2, 3))).all()


def test_a_half_precision_checkpoint_loads_in_float32(tmp_path, tiny_files):
    config, ckpt = tiny_files
    checkpoint = torch.load(ckpt)
    checkpoint["state_dict"] = {k: v.half() for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, tmp_path / "half.ckpt")
    model = load_vqgan(config, tmp_path / "half.ckpt")
    assert {t.dtype for t in model.state_dict().values()} == {torch.float32}
    saved = checkpoint["state_dict"]["decoder.conv_out.weight"]
    assert torch.equal(model.decoder.conv_out.weight, saved.float())
    assert model.decode(torch.rand(1, 4, 2, 3)).dtype == torch.float32


def test_mismatched_or_foreign_files_are_refused(tmp_path, tiny_files):
    config, ckpt = tiny_files
    other = yaml.safe_load(config.read_text())
    other["model"]["params"]["n_embed"] = 128
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(other))
    with pytest.raises(CheckpointError, match="does not match config"):
        load_vqgan(tmp_path / "big.yaml", ckpt)
    (tmp_path / "x.yaml").write_text("model: {target: taming.models.other.Thing, params: {}}")
    with pytest.raises(CheckpointError, match=r"x\.yaml"):
        load_vqgan(tmp_path / "x.yaml", ckpt)
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk\.ckpt"):
        load_vqgan(config, tmp_path / "junk.ckpt")


def test_quantise_picks_nearest_code_with_straight_through_gradient():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 1.0], [-1.0, 2.0]])
    latent = torch.tensor([[0.9, 0.8], [-0.7, 1.9]]).T.reshape(1, 2, 1, 2).requires_grad_(True)
    out = quantise(latent, codebook)
    assert torch.equal(out.detach().reshape(2, 2).T, codebook[[1, 2]])
    (out * torch.arange(4.0).reshape(1, 2, 1, 2)).sum().backward()
    assert torch.equal(latent.grad, torch.arange(4.0).reshape(1, 2, 1, 2))


def test_synth_shape_range_and_gradient_reaches_the_latent(tiny_model):
    drawer = _drawer(tiny_model)
    drawer.init_from_image(torch.rand(1, 3, 24, 40), torch.Generator())
    image = drawer.synth()
    assert image.shape == (1, 3, 24, 40) and image.min() >= 0 and image.max() <= 1
    image.mean().backward()
    assert drawer.latent.grad is not None and drawer.latent.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_model.parameters())


def test_canvas_floors_to_the_downsampling_factor_as_pixray(tiny_model):
    drawer = _drawer(tiny_model, 41, 23)
    assert (drawer.width, drawer.height) == (40, 22) and drawer.latent.shape == (1, 4, 11, 20)
    assert drawer.synth().shape == (1, 3, 22, 40)


def test_clamp_keeps_the_latent_in_the_codebook_range(tiny_model):
    drawer = _drawer(tiny_model)
    with torch.no_grad():
        drawer.latent.normal_(0, 100)
    drawer.clamp_()
    low, high = tiny_model.codebook.min(0).values, tiny_model.codebook.max(0).values
    latent = drawer.latent.movedim(1, -1)
    assert (latent >= low).all() and (latent <= high).all()


def test_init_image_round_trip_beats_noise(tiny_model):
    generator = torch.Generator().manual_seed(5)
    image = (_smooth_images(1, 16, generator) + 1) / 2
    drawer = _drawer(tiny_model, 16, 16)
    drawer.init_from_image(image, torch.Generator())
    noise = torch.rand(image.shape, generator=generator)
    round_trip = F.mse_loss(drawer.synth().detach(), image)
    assert round_trip < 0.5 * F.mse_loss(noise, image), (round_trip, F.mse_loss(noise, image))


def test_runs_share_one_loaded_model(tiny_files, tiny_perceptor, small_settings):
    config, ckpt = tiny_files
    cache = ModelCache(torch.device("cpu"), Path("unused"))
    settings = {**small_settings, "drawer": "vqgan", "vqgan_config": str(config),
                "vqgan_checkpoint": str(ckpt), "iterations": 2}
    for _ in range(2):
        steps = list(pixray.generate(settings, perceptors=[tiny_perceptor], models=cache))
        assert steps[-1].image.shape == (1, 3, 24, 32) and len(steps) == 3
    assert cache.loads == 1


def test_named_model_from_weights_dir_and_missing_files(tmp_path, tiny_files, tiny_perceptor,
                                                        small_settings):
    settings = {**small_settings, "drawer": "vqgan", "vqgan_model": "imagenet_f16_1024",
                "weights_dir": str(tmp_path), "iterations": 1}
    with pytest.raises(MissingWeightsError) as info:
        pixray.generate(settings, perceptors=[tiny_perceptor])
    message = str(info.value)
    assert "vqgan_imagenet_f16_1024.yaml and vqgan_imagenet_f16_1024.ckpt" in message
    assert "python -m pixray.weights download imagenet_f16_1024" in message and str(tmp_path) in message
    for source, name in zip(tiny_files, ["vqgan_imagenet_f16_1024.yaml", "vqgan_imagenet_f16_1024.ckpt"],
                            strict=True):
        (tmp_path / name).write_bytes(source.read_bytes())
    assert len(list(pixray.generate(settings, perceptors=[tiny_perceptor]))) == 2


def test_cli_two_steps(tmp_path, tiny_files, tiny_checkpoint):
    config, ckpt = tiny_files
    code = main(["--prompts", "a red circle", "--drawer", "vqgan", "--vqgan_config", str(config),
                 "--vqgan_checkpoint", str(ckpt), "--clip_models", str(tiny_checkpoint), "--size", "32,24",
                 "--iterations", "2", "--num_cuts", "2", "--device", "cpu", "--outdir", str(tmp_path / "o"),
                 "--quiet"])
    assert code == 0 and (tmp_path / "o" / "output.png").is_file()


def test_lightning_training_state_of_uninstalled_libraries_is_ignored(tmp_path, tiny_files):
    """Old Lightning checkpoints pickle callback objects; loading must not need (or run) them."""
    config, ckpt = tiny_files
    checkpoint = torch.load(ckpt)
    with class_of_an_uninstalled_library() as ModelCheckpoint:
        checkpoint["callbacks"] = {ModelCheckpoint: {"best_model_score": torch.tensor(1.0)},
                                   "instance": ModelCheckpoint()}
        torch.save(checkpoint, tmp_path / "old.ckpt")
    model = load_vqgan(config, tmp_path / "old.ckpt")
    assert torch.equal(model.codebook, checkpoint["state_dict"]["quantize.embedding.weight"])


def test_preloaded_model_is_the_one_runs_use(tmp_path, tiny_files, tiny_perceptor, small_settings):
    for source, name in zip(tiny_files, ["vqgan_imagenet_f16_1024.yaml", "vqgan_imagenet_f16_1024.ckpt"],
                            strict=True):
        (tmp_path / name).write_bytes(source.read_bytes())
    cache = ModelCache(torch.device("cpu"), tmp_path)
    cache.preload(["imagenet_f16_1024"])
    assert cache.loads == 1
    settings = {**small_settings, "drawer": "vqgan", "vqgan_model": "imagenet_f16_1024", "iterations": 1}
    assert len(list(pixray.generate(settings, perceptors=[tiny_perceptor], models=cache))) == 2
    assert cache.loads == 1


def test_quantise_stays_float32_inside_an_autocast():
    # Codes 1 and 2 are 0.01 apart: distances in bfloat16 (8 bits of mantissa) cannot tell which is nearer.
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.01, 0.0]])
    latent = torch.tensor([1.007, 0.0]).reshape(1, 2, 1, 1)
    with torch.autocast("cpu", torch.bfloat16):
        out = quantise(latent, codebook)
    assert out.dtype == torch.float32 and torch.equal(out.reshape(2), codebook[2])


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_decoder_runs_in_the_runs_precision_channels_last_on_the_cpu(tiny_files, tiny_perceptor,
                                                                       small_settings, precision):
    config, ckpt = tiny_files
    cache = ModelCache(torch.device("cpu"), Path("unused"))
    settings = {**small_settings, "drawer": "vqgan", "vqgan_config": str(config),
                "vqgan_checkpoint": str(ckpt), "iterations": 2, "precision": precision}
    run = pixray.generate(settings, perceptors=[tiny_perceptor], models=cache)
    decoder = run.drawer.model.decoder
    conv = next(m for m in decoder.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    seen = []
    conv.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    steps = list(run)
    assert set(seen) == {getattr(torch, precision)}
    assert all(step.image.dtype == torch.float32 and torch.isfinite(step.image).all() for step in steps)
