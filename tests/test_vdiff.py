"""The vdiff drawer: CLIP-steered v-diffusion sampling, on toy networks in the v-diffusion file format.

The real networks (243M-968M parameters) are checked where that costs nothing: built without
storage, their parameter counts and the multiple their sides must be. The sampler, the engine's
schedule seams and the loader run on toy networks made of the v-diffusion package's own blocks,
saved as the releases are (a plain state dict) and loaded by the real loader in place of a
named model.
"""

from __future__ import annotations

import math
from pathlib import Path

import diffusion.models.models as architectures
import pytest
import torch
import torch.nn.functional as F
from diffusion import utils
from diffusion.models.wikiart_128 import FourierFeatures, ResConvBlock, SkipBlock
from test_engine import _rates_seen
from test_frozen_convolution import check_frozen_network
from torch import nn

import pixray
from pixray.drawers import DRAWERS
from pixray.drawers.vdiff import VDIFF_MODELS, load_vdiff
from pixray.model_cache import ModelCache
from pixray.options import SettingsError
from pixray.perceptors import Perceptor
from pixray.settings import build_settings
from pixray.weights import MANIFEST, CheckpointError
from pixray.weights.without_storage import built_without_storage, unloaded


class ToyVdiff(nn.Module):
    """v-diffusion's interface at toy size: ``forward(x (N,3,H,W), t (N,)) -> v``, one halving."""

    def __init__(self) -> None:
        super().__init__()
        self.shape, self.min_t, self.max_t = (3, 32, 32), 0.0, 1.0
        self.timestep_embed = FourierFeatures(1, 8, std=0.2)
        halved = SkipBlock([nn.AvgPool2d(2), ResConvBlock(8, 8, 8), nn.Upsample(scale_factor=2)])
        self.net = nn.Sequential(ResConvBlock(3 + 8, 8, 8), halved, ResConvBlock(16, 8, 3))

    def embed(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        log_snr = utils.alpha_sigma_to_log_snr(*utils.t_to_alpha_sigma(t))
        return self.timestep_embed(log_snr[:, None])[..., None, None].expand(-1, -1, *x.shape[2:])

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.embed(x, t)], dim=1))


class ToyConditioned(ToyVdiff):
    """A toy cc12m: conditioned on a 32-wide embedding of the prompts (the tests' tiny CLIP named
    ViT-B/16)."""

    clip_model = "ViT-B/16"

    def __init__(self) -> None:
        super().__init__()
        self.mapping = nn.Linear(32, 8)

    def forward(self, x: torch.Tensor, t: torch.Tensor, clip_embed: torch.Tensor) -> torch.Tensor:
        self.seen = clip_embed.detach().clone()  # what the last call was given
        return self.net(torch.cat([x, self.embed(x, t) + self.mapping(clip_embed)[..., None, None]], dim=1))


def write_toy(directory: Path, model: str, cls: type[nn.Module] = ToyVdiff) -> Path:
    torch.manual_seed(0)
    path = directory / VDIFF_MODELS[model].file
    torch.save(cls().state_dict(), path)
    return path


def install_toys(patch: pytest.MonkeyPatch, directory: Path) -> Path:
    """Make ``directory`` a weights directory whose yfcc_2, wikiart_128 and cc12m models are toys
    (their checksums not checked: toys cannot match the published ones)."""
    import pixray.weights

    patch.setattr(pixray.weights, "verify", lambda path, entry: None)
    for name in ("yfcc_2", "wikiart_128"):
        patch.setitem(architectures.models, name, ToyVdiff)
        write_toy(directory, name)
    for name in ("cc12m_1", "cc12m_1_cfg"):
        patch.setitem(architectures.models, name, ToyConditioned)
        write_toy(directory, name, ToyConditioned)
    return directory


@pytest.fixture
def toys(monkeypatch, tmp_path) -> Path:
    return install_toys(monkeypatch, tmp_path)


def _drawer(toys: Path, width: int = 40, height: int = 24, **options):
    settings = build_settings({"drawer": "vdiff", **options})
    return DRAWERS.lookup("vdiff").create(settings.section("vdiff"), width, height,
                                          ModelCache(torch.device("cpu"), toys))


# Parameter counts as the v-diffusion-pytorch README states them (cc12m 602M, yfcc_1 481M, yfcc_2 968M).
PUBLISHED = {"cc12m_1": 602.9, "cc12m_1_cfg": 602.9, "yfcc_1": 481.4, "yfcc_2": 968.3}


@pytest.mark.parametrize("name", list(VDIFF_MODELS))
def test_every_model_is_the_packages_network_with_its_weight_file_and_multiple(name):
    model = built_without_storage(architectures.models[name])
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    if name in PUBLISHED:
        assert millions == pytest.approx(PUBLISHED[name], abs=0.1)
    assert unloaded(model)  # nothing allocated before the checkpoint is read
    multiple = VDIFF_MODELS[name].multiple
    model = model.to("meta")
    extra = {"clip_embed": torch.zeros(1, 512, device="meta")} if hasattr(model, "clip_model") else {}
    x = torch.zeros(1, 3, 3 * multiple, 2 * multiple, device="meta")  # shapes only
    assert model(x, torch.zeros(1, device="meta"), **extra).shape == x.shape
    entry = MANIFEST[VDIFF_MODELS[name].file]
    assert len(entry.sha256) == 64 and entry.urls[0].endswith(f"/v-diffusion/{name}.pth")
    # The perceptor the network reads, as the table says before loading it.
    assert getattr(model, "clip_model", None) == VDIFF_MODELS[name].conditioning
    assert VDIFF_MODELS[name].conditioning == ("ViT-B/16" if name.startswith("cc12m") else None)


def test_the_loader_reads_a_state_dict_into_the_named_network(toys):
    model = load_vdiff("wikiart_128", toys / "vdiff_wikiart_128.pth")
    torch.manual_seed(0)
    expected = ToyVdiff().state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    assert not unloaded(model) and not any(p.requires_grad for p in model.parameters())


def test_a_file_that_is_not_the_networks_weights_is_refused(toys):
    with pytest.raises(CheckpointError, match=r"does not hold the cc12m_1 network's weights"):
        load_vdiff("cc12m_1", toys / "vdiff_wikiart_128.pth")  # the unconditioned toy lacks the mapping
    (toys / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth"):
        load_vdiff("wikiart_128", toys / "junk.pth")
    torch.save([1, 2], toys / "list.pth")
    with pytest.raises(CheckpointError, match=r"not a v-diffusion checkpoint"):
        load_vdiff("wikiart_128", toys / "list.pth")


def test_the_canvas_is_cropped_from_the_middle_of_the_working_canvas(toys):
    drawer = _drawer(toys, vdiff_model="wikiart_128")  # multiple 32
    assert (drawer.width, drawer.height) == (40, 24) and drawer.x.shape == (1, 3, 32, 64)
    drawer.start_run(10)
    image = torch.rand(1, 3, 24, 40)
    generator = torch.Generator().manual_seed(3)
    drawer.init_from_image(image, generator)
    t = utils.get_spliced_ddpm_cosine_schedule(torch.linspace(1, 0, 12)[:-1])
    alpha, sigma = utils.t_to_alpha_sigma(t[0])
    noise = torch.randn(1, 3, 32, 64, generator=torch.Generator().manual_seed(3))
    start = torch.zeros(1, 3, 32, 64)
    start[:, :, 4:28, 12:52] = image * 2 - 1  # grey (0) around the image
    assert torch.allclose(drawer.x, start * alpha + noise * sigma, atol=1e-6)
    out = drawer.synth()
    assert out.shape == (1, 3, 24, 40) and out.min() >= 0 and out.max() <= 1
    out.mean().backward()
    assert drawer.x.grad[:, :, 4:28, 12:52].abs().sum() > 0


def test_each_step_after_the_first_moves_the_sample_one_ddim_step_and_sets_pixrays_rate(toys):
    drawer = _drawer(toys, vdiff_model="wikiart_128", vdiff_schedule="log", vdiff_skip=20)
    drawer.start_run(6)
    drawer.init_from_image(torch.rand(1, 3, 24, 40), torch.Generator().manual_seed(0))
    t = utils.get_log_schedule(torch.linspace(0.8, 0, 8)[:-1])  # skip 20 %: from 0.8
    alphas, sigmas = utils.t_to_alpha_sigma(t)
    drawer.synth()
    before = drawer.x.detach().clone()
    assert drawer.end_step(0) is None and torch.equal(drawer.x, before)  # Pixray's first step moves nothing
    with torch.no_grad():
        v = drawer.model(drawer.x, t[1:2])
        pred = drawer.x * alphas[1] - v * sigmas[1]
        drawer.synth()
        drawer.x.add_(0.01)  # as if the optimiser had moved it
        eps = drawer.x * sigmas[1] + v * alphas[1]
        ddim = (sigmas[2] ** 2 / sigmas[1] ** 2).sqrt() * (1 - alphas[1] ** 2 / alphas[2] ** 2).sqrt()
        state = drawer._generator.get_state()
        noise = torch.randn(drawer.x.shape, generator=torch.Generator().set_state(state))
        expected = pred * alphas[2] + eps * (sigmas[2] ** 2 - ddim**2).sqrt() + noise * ddim
    rate = drawer.end_step(1)
    assert torch.allclose(drawer.x, expected, atol=1e-5)
    assert rate == pytest.approx(min(float(sigmas[1] / alphas[1]) * 0.001, 0.01))
    assert drawer.index == 2


class _NoFloat64(torch.Tensor):
    """A tensor that, like one on Apple's mps device, cannot become float64 where it lies."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.Tensor.double:
            raise TypeError("Cannot convert a MPS Tensor to float64 dtype")
        if func is torch.Tensor.cpu:
            with torch._C.DisableTorchFunctionSubclass():
                return func(*args, **(kwargs or {})).as_subclass(torch.Tensor)
        return super().__torch_function__(func, types, args, kwargs)


def test_the_rates_are_computed_where_float64_exists(toys, monkeypatch):
    schedule = utils.get_spliced_ddpm_cosine_schedule
    monkeypatch.setattr(utils, "get_spliced_ddpm_cosine_schedule",
                        lambda t: schedule(t).as_subclass(_NoFloat64))
    drawer = _drawer(toys, vdiff_model="wikiart_128")
    drawer.start_run(4)
    t = schedule(torch.linspace(1, 0, 6)[:-1]).double() * math.pi / 2
    assert drawer._rates == pytest.approx([min(float(x.sin() / x.cos()) * 0.001, 0.01) for x in t])


def test_a_run_samples_through_its_schedule(toys, tiny_perceptor, tmp_path):
    settings = {"drawer": "vdiff", "vdiff_model": "wikiart_128", "prompts": "a lighthouse", "size": [40, 24],
                "iterations": 5, "num_cuts": 2, "seed": 4, "weights_dir": str(toys), "device": "cpu",
                "outdir": str(tmp_path)}
    steps = list(pixray.generate(settings, perceptors=[tiny_perceptor]))
    assert [s.index for s in steps] == [0, 1, 2, 3, 4, 5] and steps[-1].is_final
    assert steps[-1].image.shape == (1, 3, 24, 40)
    again = list(pixray.generate(settings, perceptors=[tiny_perceptor]))[-1]
    assert torch.equal(again.image, steps[-1].image)  # the sampler's noise comes from the run's seed
    # The early steps are nearly pure noise, the last the sample.
    assert not torch.equal(steps[0].image, steps[-1].image)


def test_the_rates_follow_pixrays_rule_and_ignore_drops(toys, tiny_perceptor, monkeypatch, tmp_path):
    rates = _rates_seen(monkeypatch)
    base = {"drawer": "vdiff", "vdiff_model": "wikiart_128", "prompts": "a lighthouse", "size": [40, 24],
            "iterations": 4, "num_cuts": 2, "seed": 4, "weights_dir": str(toys), "device": "cpu",
            "outdir": str(tmp_path), "learning_rate_drops": [50]}
    list(pixray.generate(base, perceptors=[tiny_perceptor]))
    t = utils.get_spliced_ddpm_cosine_schedule(torch.linspace(1, 0, 6)[:-1]).double() * math.pi / 2
    rule = [min(float(t[i].sin() / t[i].cos()) * 0.001, 0.01) for i in (1, 2)]
    assert rates[:2] == [0.2, 0.2] and rates[2:] == pytest.approx(rule)
    rates.clear()
    init = tmp_path / "init.png"
    pixray.generate(base, perceptors=[tiny_perceptor]).final_image().save(init)
    rates.clear()
    list(pixray.generate({**base, "init_image": str(init)}, perceptors=[tiny_perceptor]))
    assert rates[:2] == [0.01, 0.01]  # Pixray's rate from an init image
    rates.clear()
    list(pixray.generate({**base, "learning_rate": 0.05}, perceptors=[tiny_perceptor]))
    assert rates[:2] == [0.05, 0.05]


def test_cc12m_reads_the_weighted_prompts_through_its_perceptor(toys, tiny_perceptor, tmp_path):
    settings = {"drawer": "vdiff", "vdiff_model": "cc12m_1", "prompts": "a lighthouse:2|a storm:-1",
                "size": [64, 64], "iterations": 2, "num_cuts": 2, "seed": 1, "weights_dir": str(toys),
                "device": "cpu", "outdir": str(tmp_path), "vector_prompts": "none",
                "precision": "float32"}  # exact comparison below: float32 wherever bfloat16 is fast too
    b16 = Perceptor("ViT-B/16", tiny_perceptor.model)  # the toy network reads a 32-wide embedding
    run = pixray.generate(settings, perceptors=[tiny_perceptor, b16])
    list(run)
    embeds = b16.encode_text(["a lighthouse", "a storm"])
    expected = F.normalize(2 * embeds[:1] - embeds[1:], dim=-1)
    assert torch.allclose(run.drawer.model.seen, expected, atol=1e-6)
    # Refused before any model loads (the weights directory need not hold the network).
    with pytest.raises(SettingsError, match=r"conditioned on ViT-B/16's embedding of the prompts: add "
                                            r"ViT-B/16 to clip_models \(now ViT-B/32, RN50\)"):
        pixray.generate({**settings, "weights_dir": str(tmp_path / "empty"), "clip_models": "ViT-B/32,RN50"})


def test_classifier_free_guidance_mixes_the_unconditional_prediction(toys):
    drawer = _drawer(toys, 32, 32, vdiff_model="cc12m_1_cfg", vdiff_guidance=3)
    drawer.clip_embed = F.normalize(torch.randn(1, 32), dim=-1)
    x, t = torch.randn(1, 3, 64, 64), torch.tensor(0.7)
    with torch.no_grad():
        v = drawer._velocity(x, t)
        plain = drawer.model(x, t.reshape(1), drawer.clip_embed)
        unconditional = drawer.model(x, t.reshape(1), torch.zeros(1, 32))
    assert torch.allclose(v, unconditional + 3 * (plain - unconditional), atol=1e-5)
    with pytest.raises(SettingsError, match=r"'vdiff_guidance' \(3\) needs vdiff_model 'cc12m_1_cfg'"):
        _drawer(toys / "absent", vdiff_model="cc12m_1", vdiff_guidance=3)  # refused before loading


def test_settings_that_cannot_apply_to_a_sampler_are_refused(toys, tiny_perceptor, tmp_path):
    base = {"drawer": "vdiff", "prompts": "a lighthouse", "size": [40, 24], "iterations": 3, "num_cuts": 2,
            "weights_dir": str(toys), "device": "cpu", "outdir": str(tmp_path)}
    with pytest.raises(SettingsError, match=r"'auto_stop' cannot end a 'vdiff' run early"):
        pixray.generate({**base, "auto_stop": True}, perceptors=[tiny_perceptor])
    image = tmp_path / "overlay.png"
    pixray.generate({**base, "drawer": "pixel"}, perceptors=[tiny_perceptor]).final_image().save(image)
    with pytest.raises(SettingsError, match=r"'vdiff' starts from random noise and redraws it at every "
                                            r"timestep; choose one of"):
        pixray.generate({**base, "overlay_image": str(image)}, perceptors=[tiny_perceptor])
    with pytest.raises(SettingsError, match=r"vdiff_skip"):
        build_settings({"drawer": "vdiff", "vdiff_skip": 100})
    with pytest.raises(SettingsError, match=r"unknown vdiff model|vdiff_model"):
        build_settings({"drawer": "vdiff", "vdiff_model": "yfcc_3"})


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@pytest.mark.parametrize("schedule", ["default", "log"])
def test_the_schedules_timesteps_against_hand_computed_values(toys, schedule):
    """Two iterations: timesteps 1, 2/3 and 1/3 of the way down (the last for the final image), as
    Pixray spaces them, mapped through the schedule; checked as each one's signal level alpha."""
    drawer = _drawer(toys, vdiff_model="wikiart_128", vdiff_schedule=schedule)
    drawer.start_run(2)
    wanted = []
    for t in (1, 2 / 3, 1 / 3):
        if schedule == "log":  # log SNR evenly from 10 down to -10
            wanted.append(math.sqrt(_sigmoid(10 - 20 * t)))
            continue
        stretched = t * (1 + 0.80074257 - 0.48536712)  # the cosine schedule, then DDPM's tail
        if stretched < 0.80074257:
            wanted.append(math.cos(stretched * math.pi / 2))
        else:
            u = stretched - 0.80074257 + 0.48536712
            wanted.append(math.sqrt(_sigmoid(-math.log(math.expm1(1e-4 + 10 * u * u)))))
    alphas = [float(drawer._alpha_sigma(i)[0]) for i in range(3)]
    assert alphas == pytest.approx(wanted, abs=1e-6)
    assert wanted[0] < 0.01 < wanted[1] < wanted[2]  # from nearly pure noise towards the picture


def test_the_network_keeps_no_convolutions_input_for_the_same_velocity_and_gradient(toys):
    model = load_vdiff("wikiart_128", toys / "vdiff_wikiart_128.pth")
    t = torch.full((1,), 0.7)
    check_frozen_network(model, lambda x: model(x, t), torch.randn(1, 3, 32, 32))
