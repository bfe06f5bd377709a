"""The settings tree: one typed source for CLI flags, YAML files, the Python API and Cog inputs.

The tree is the core :class:`Settings` plus one options section per registered drawer. Users see
flat names (``pixel_size``, ``iterations``) as in Pixray; every name is unique across the tree.
Quality and aspect presets are data (:data:`QUALITY_PRESETS`, :data:`ASPECT_SIZES`);
:func:`resolve` turns settings into the concrete :class:`Plan` of one run.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import yaml
from PIL import Image

from .cutouts import CUT_METHODS, PADDING_MODES
from .drawers import DRAWERS
from .filters import FILTERS
from .init_noise import NOISE_KINDS
from .losses import LOSSES
from .optimisers import OPTIMISERS
from .options import SettingsError, Spec, coerce, option, shown, specs_of
from .pixray_settings import (
    refuse_drawer_renamed,
    refuse_loss_left_out,
    refuse_perceptors_left_out,
    renamed_setting_hint,
)
from .registry import Registry
from .value_forms import (
    iterations_of,
    parse_iterations_unit,
    parse_loss_entry,
    parse_percent_unit,
    parse_png_name,
    parse_seed,
    split_loss_entry,
)


@dataclass(frozen=True)
class QualityPreset:
    """What a ``quality`` level sets when the user leaves the setting unset."""

    clip_models: tuple[str, ...]
    iterations: int
    scale: float
    num_cuts: int
    batches: int


# Pixray's tables (clip perceptors): models, iterations, size scale, cuts x batches.
QUALITY_PRESETS: Mapping[str, QualityPreset] = MappingProxyType({
    "draft": QualityPreset(("ViT-B/16",), 200, 1, 24, 1),
    "normal": QualityPreset(("ViT-B/32", "ViT-B/16"), 250, 2, 30, 1),
    "better": QualityPreset(("RN50", "ViT-B/32", "ViT-B/16"), 300, 3, 36, 1),
    "best": QualityPreset(("RN50x4", "ViT-B/32", "ViT-B/16"), 350, 4, 12, 2),
    "supreme": QualityPreset(("RN50x4", "RN101", "ViT-B/32", "ViT-B/16"), 400, 5, 8, 4),
})

# Canvas (width, height) at scale 1; aspect 'retain' takes the init image's shape at RETAIN_WIDTH.
RETAIN_WIDTH = 144
#: Smallest and largest canvas side, in pixels.
MIN_SIDE, MAX_SIDE = 8, 4096
ASPECT_SIZES: Mapping[str, tuple[int, int]] = MappingProxyType({
    "widescreen": (192, 108),
    "square": (144, 144),
    "portrait": (128, 160),
})
#: Pixray's ``ezsize`` names: the scale each stands for when ``scale`` is unset.
EZ_SIZES: Mapping[str, int] = MappingProxyType({"small": 1, "medium": 2, "large": 4})


def _known_loss(entry: str) -> str:
    refuse_loss_left_out(split_loss_entry(entry)[0])
    if split_loss_entry(entry)[0] not in LOSSES:
        raise ValueError(entry)
    return entry


def _clip_family(value: str) -> str:
    refuse_perceptors_left_out(str(value).strip())
    return value


def _cuda_device(value: str) -> str:
    if not re.fullmatch(r"cuda(:\d{1,2})?", str(value).strip()):
        raise ValueError(value)
    return str(value).strip()


def _known_filter(entry: str) -> str:
    if split_loss_entry(entry)[0] not in FILTERS:
        raise ValueError(entry)
    return entry


_UNITS = "iterations (10, 10i, 10 iterations) or percent of the run (5%, 5p), as Pixray"
_EVERY = ("iterations (10, 10i, 10 iterations) or percent of the run (5%, 5p), as Pixray; 0: only at "
          "the end")


@dataclass(frozen=True)
class Settings:
    """Core settings of a run. Drawer and loss options live in :attr:`sections`, one dataclass each."""

    prompts: str = option("", "Text prompts, '|'-separated; each is 'text', 'text:weight' or "
                              "'text:weight:stop'; a negative weight pushes away", flags=["-p"],
                          pipes=True)
    drawer: str = option("vqgan", "What renders the image", choices=list(DRAWERS),
                         parse=refuse_drawer_renamed)
    quality: str = option("normal", "Preset for clip_models, iterations, scale, num_cuts, batches",
                          choices=list(QUALITY_PRESETS))
    clip_models: list[str] | None = option(
        None, "CLIP models judging the image (names or checkpoint paths); default from quality")
    perceptors: str = option("clip", "The family of CLIP models the quality presets pick (Pixray's): clip is "
                                     "OpenAI's; Pixray's slip and mixed are left out", choices=["clip"],
                             parse=_clip_family)
    aspect: str = option("widescreen", "Canvas shape; size = base size x scale",
                         choices=[*ASPECT_SIZES, "retain"], flags=["-asp"],
                         describe=f"{', '.join(ASPECT_SIZES)}, or retain (the init_image's shape, "
                                  f"{RETAIN_WIDTH} x scale wide, as Pixray)")
    scale: float | None = option(None, "Canvas scale factor; default from quality",
                                 minimum=0.1, maximum=20, flags=["-sca"])
    ezsize: str | None = option(None, "Canvas scale by name where scale is unset (Pixray's): small is 1, "
                                      "medium 2, large 4; default from quality", choices=list(EZ_SIZES),
                                flags=["-ezs"])
    size: list[int] | None = option(None, "Explicit canvas 'width height' in pixels (overrides aspect)",
                                    minimum=MIN_SIDE, maximum=MAX_SIDE, length=2, flags=["-s"])
    iterations: int | None = option(None, "Optimisation steps; default from quality",
                                    minimum=1, maximum=100000, flags=["-i"])
    num_cuts: int | None = option(None, "Cutouts per batch; default from quality", minimum=1, maximum=1024,
                                  flags=["-cuts"])
    batches: int | None = option(None, "Cutout batches per step (gradient accumulation); default from "
                                       "quality", minimum=1, maximum=64, flags=["-bats"])
    learning_rate: float | None = option(None, "Optimiser step size; default from the drawer",
                                         minimum=1e-6, maximum=10, flags=["-lr"])
    learning_rate_drops: list[str] = option(
        ["75%"], "Points of the run after which the learning rate is divided by 10",
        flags=["-lrd"], parse=parse_percent_unit,
        describe="points of the run: percent up to 100 (75, 75%, 75p) or iterations (100i, 100 iterations)")
    optimiser: str = option("Adam", "Optimiser", choices=list(OPTIMISERS), flags=["-opt"])
    cut_method: str = option("pixray", "How cutouts view the canvas: pixray (Pixray's crops and letterboxed "
                                       "whole-canvas views) or rotated (turned crops and zoom-out views; "
                                       "the shapes-world guides were trained on these)",
                             choices=list(CUT_METHODS))
    cut_padding: str = option("alternate", "What a crop view sees beyond the canvas: alternate (reflection "
                                           "on even steps, border on odd, as Pixray) or one padding mode",
                              choices=["alternate", *PADDING_MODES])
    cut_zoom_padding: str = option("grey", "What surrounds whole-canvas views: a random grey frame (Pixray) "
                                           "or the canvas extended by a padding mode",
                                   choices=["grey", *PADDING_MODES])
    cut_pow: float = option(1.0, "How crop views' sizes are drawn: each one's share of the canvas is "
                                 "low + (high - low) x u^cut_pow for a uniform u, so above 1 favours "
                                 "close-ups and below 1 wide crops; 1 draws it uniformly, as Pixray does "
                                 "whatever this is (it declares it and never reads it)",
                            minimum=0.1, maximum=10, flags=["-cutp", "--cut_power"])
    custom_loss: list[str] = option(
        [], "Extra losses on the whole canvas, each 'name' or 'name:weight' (the weight scales it)",
        flags=["--losses"], parse=lambda value: _known_loss(parse_loss_entry(value)),
        describe=f"loss names ({', '.join(LOSSES)}), each optionally 'name:weight' (comma-separated)")
    filters: list[str] = option(
        [], "Stages between the drawer's image and the cutouts, in order, each 'name' or 'name:weight' "
            "(the weight scales the filter's own loss)",
        parse=lambda value: _known_filter(parse_loss_entry(value)),
        describe=f"filter names ({', '.join(FILTERS)}), each optionally 'name:weight' (comma-separated)")
    labels: str | None = option(None, "Class names as CLIP's zero-shot classifiers read them (Pixray's seven "
                                      "ImageNet templates, averaged), '|'-separated 'label:weight:stop'",
                                flags=["-l"], pipes=True)
    image_prompts: str | None = option(None, "Images each canvas cutout is pulled towards through the same "
                                             "cutout, '|'-separated 'file:weight:stop' (globs and {a,b} "
                                             "match several)", names_file=True, flags=["-ip"],
                                       pipes=True)
    image_prompt_weight: float | None = option(None, "Multiplies every image prompt's weight (unset: 1)",
                                               minimum=-100, maximum=100, flags=["-ipw"])
    image_prompt_shuffle: bool = option(False, "Image prompts get cutouts of their own instead of the "
                                               "canvas's", flags=["-ips"])
    target_images: str | None = option(None, "Images whose CLIP embeddings pull like text prompts, "
                                             "'|'-separated, each 'file', 'file:weight' or "
                                             "'file:weight:stop'", names_file=True, flags=["-ti"],
                                       pipes=True)
    noise_prompt_seeds: list[int] = option([], "Seeds of random directions in each CLIP model's space, "
                                                "used as prompts", minimum=0, maximum=2**53 - 1,
                                           flags=["-nps"])
    noise_prompt_weights: list[float] = option([], "Weights of the noise prompts, in order (a seed "
                                                    "without one weighs 1)", minimum=-100, maximum=100,
                                               flags=["-npw"])
    vector_prompts: str = option("textoff", "Fixed directions per CLIP model, '|'-separated "
                                            "'name:weight:stop', pulling at a tenth of their weight "
                                            "(Pixray's): textoff (away from rendered text) or a JSON "
                                            "vector table; none turns them off", flags=["-vp"],
                                 pipes=True)
    auto_stop: bool = option(False, "When the loss has not improved for 12 steps, drop the learning rate "
                                    "(counting learning_rate_drops too); once more than there are drop "
                                    "points, stop and keep the best image (Pixray's, which keeps the last)",
                             flags=["-as"])
    transparent_weight: float = option(0.0, "For drawers drawing with opacity (pixel's transparent): "
                                            "weight of the mean opacity as a loss, so positive values "
                                            "favour transparency (Pixray's)", minimum=-100, maximum=100)
    alpha_use_g: bool = option(False, "Accepted so that Pixray's files load; Pixray declares it ('use "
                                      "gaussian mask weighting') and never reads it, so it changes nothing")
    alpha_gamma: float = option(4.0, "Accepted so that Pixray's files load; Pixray declares it ('sigma for "
                                     "the alpha gaussian') and never reads it, so it changes nothing",
                                minimum=-1e6, maximum=1e6)
    seed: int | None = option(None, "Random seed: a number, or any text (hashed to one as Pixray does); "
                                    "chosen at random and recorded when unset",
                              minimum=0, maximum=2**53 - 1,  # exact in a float: JSON clients keep it
                              parse=parse_seed)
    init_image: str | None = option(None, "Image file the drawer starts from", names_file=True,
                                    flags=["-ii"])
    init_image_alpha: int | None = option(None, "Opacity (0-255) of init_image over the init noise at "
                                                "the start; unset: the image alone (Pixray's default of 200 "
                                                "has no effect in its code)", minimum=0, maximum=255,
                                          flags=["-iia"])
    init_weight: float = option(0.0, "Pull of the init image's CLIP embedding on the cutouts' (a spherical "
                                     "distance, as a prompt)", minimum=-100, maximum=100, flags=["-iw"])
    init_weight_dist: float = option(0.0, "Weight of the mean squared distance of the drawer's parameters "
                                          "from their start (halved, as Pixray)", minimum=-100, maximum=100,
                                     flags=["-iwd"])
    init_weight_cos: float = option(0.0, "Weight of the cosine distance of the drawer's parameters from "
                                         "their start", minimum=-100, maximum=100, flags=["-iwc"])
    init_weight_pix: float = option(0.0, "Weight of the mean absolute difference of the canvas from the "
                                         "init image (halved, as Pixray)", minimum=-100, maximum=100,
                                    flags=["-iwp"])
    image_labels: str | None = option(None, "Images ('|'-separated files or globs) whose drawer "
                                            "parameters, averaged, the run's parameters are pulled towards "
                                            "(a spherical distance, as Pixray); for drawers that take "
                                            "their parameters from an image", names_file=True, flags=["-il"],
                                      pipes=True)
    image_label_weight: float = option(1.0, "Weight of the pull towards image_labels", minimum=-100,
                                       maximum=100, flags=["-ilw"])
    spot_prompts: str = option("", "Text prompts seen only by the light part of spot_file (default mask: "
                                   "a centred disc), '|'-separated 'text:weight:stop'",
                               flags=["-sp", "--spot"], pipes=True)
    spot_prompts_off: str = option("", "Text prompts seen only by the dark part of spot_file (default "
                                       "mask: all but a centred disc), '|'-separated 'text:weight:stop'",
                                   flags=["-spo", "--spot_off"], pipes=True)
    spot_file: str | None = option(None, "Mask image for spot prompts, stretched to the canvas: light "
                                         "(grey at least half) is the spot, dark the rest; unset: a "
                                         "light centred disc", names_file=True, flags=["-spf"])
    animation_dir: str | None = option(None, "Make an animation into this directory: a picture per image "
                                             "of the longest list of overlay_image, target_images, "
                                             "init_image or image_prompts, each blended with the one "
                                             "before it every save_every steps, and anim.gif of them "
                                             "(Pixray's)",
                                       names_file=True, flags=["-anim"])
    animation_alpha: int = option(128, "Opacity (0-255) of the previous picture blended over each picture "
                                       "of an animation after every round", minimum=0, maximum=255,
                                  flags=["-ana"])
    overlay_image: str | None = option(None, "Image pasted over the canvas (by its own opacity, or "
                                             "overlay_alpha) every overlay_every steps, redrawn into the "
                                             "drawer (drawers that take their parameters from an image)",
                                       names_file=True, flags=["-ovi"])
    overlay_every: str = option("10i", "Steps between overlays", flags=["-ove"], parse=parse_iterations_unit,
                                describe=_UNITS)
    overlay_offset: str = option("0i", "First overlay step (overlays fall where step % overlay_every is "
                                      "this)", flags=["-ovo"], parse=parse_iterations_unit, describe=_UNITS)
    overlay_until: str | None = option(None, "No overlays from this step on (unset: to the end)",
                                       flags=["-ovu"], parse=parse_iterations_unit, describe=_UNITS)
    overlay_alpha: int | None = option(None, "Opacity (0-255) of the whole overlay image (unset: its own)",
                                       minimum=0, maximum=255, flags=["-ova"])
    init_noise: str = option("pixels", "Starting canvas when there is no init_image: pixels (Pixray's soft "
                                       "Perlin colour blobs), snow (a random colour per pixel), gradient "
                                       "(per-channel ramps), none (flat grey)",
                             choices=list(NOISE_KINDS), flags=["-in"])
    save_every: str = option("10i", "Write the image every N iterations (0: only at the end)",
                             flags=["-se"], parse=parse_iterations_unit, describe=_EVERY)
    save_intermediates: bool = option(True, "Also keep every saved image as steps/frame_NNNN.png and make "
                                            "steps/output.mp4 of them at the end", flags=["-si"])
    make_video: bool = option(False, "Save a frame every iteration (video/frame_NNNN.png) and make an mp4 of "
                                     "them beside the image at the end (the server returns it as its last "
                                     "output)", flags=["-vid", "--video"])
    gif: bool = option(False, "Also make each video as a looping GIF beside its mp4")
    display_every: str = option("10i", "Show progress (the CLI's loss, the server's frames, a notebook's "
                                      "image) every N iterations (0: only at the end)",
                                flags=["-de"], parse=parse_iterations_unit, describe=_EVERY)
    display_clear: bool = option(False, "In a notebook, clear the cell's output before each image pixray.run "
                                        "shows (Pixray's)", flags=["-dc"])
    outdir: str = option("outputs/%DATE%_%SEQ%", "Output directory; %DATE% is today (YYYYMMDD), "
                                                 "%SEQ% the next unused number (01, 02, ...)")
    output: str = option("output.png", "File name of the image inside outdir (.png is added or replaces "
                                       "another suffix; a relative path stays inside outdir)",
                         flags=["-o"], parse=parse_png_name,
                         describe="a file name, or a relative path inside outdir (not absolute, no '..')")
    overwrite: bool = option(False, "Allow writing into an outdir that already has files")
    device: str = option("auto", "Where to run: auto picks cuda, then mps, then cpu",
                         choices=["auto", "cpu", "cuda", "mps"])
    cuda_device: str = option("cuda:0", "Which CUDA device a run on CUDA uses (Pixray's)",
                              flags=["-cud"], parse=_cuda_device, describe="cuda or cuda:N (N from 0 to 99)")
    precision: str = option("auto", "The perceptors' arithmetic (bfloat16 also runs a drawer's network in "
                                    "it, where the drawer allows): auto picks bfloat16 where the hardware "
                                    "makes it fast (CUDA, CPUs with AMX/AVX512-BF16), else float32",
                            choices=["auto", "float32", "bfloat16", "float16"])
    cudnn_determinism: bool = option(False, "cuDNN's deterministic convolution algorithms during each step "
                                            "on CUDA (Pixray's -d); nothing elsewhere",
                                     flags=["-d", "--deterministic"])
    cuda_graphs: bool = option(False, "Replay each CLIP model's pass over the cutouts, forward and "
                                      "backward, as a CUDA graph captured at the first step (fewer kernel "
                                      "launches a step) on CUDA; nothing elsewhere")
    weights_dir: str | None = option(None, "Directory of weight files; default $PIXRAY_WEIGHTS_DIR, else "
                                           "./weights where it exists, else ~/.cache/pixray/weights "
                                           "($XDG_CACHE_HOME/pixray/weights)")
    sections: Mapping[str, Any] = field(default_factory=lambda: _default_sections(), repr=False)

    def section(self, name: str) -> Any:
        """The options dataclass of section ``name`` (a drawer or loss name)."""
        return self.sections[name]

    def to_dict(self, only_changed: bool = False) -> dict[str, Any]:
        """Flat ``name -> value`` of every setting (or of those differing from the default)."""
        values = _flat_values(self)
        if not only_changed:
            return values
        specs = all_specs()  # built from every section's fields: once, not once per setting
        return {k: v for k, v in values.items() if v != specs[k].default}

    def replace(self, **changes: Any) -> Settings:
        """A copy with the given flat settings changed (validated)."""
        return build_settings(self.to_dict(only_changed=True), changes)


@dataclass(frozen=True)
class Plan:
    """The concrete numbers of one run, after presets are applied."""

    clip_models: tuple[str, ...]
    iterations: int
    num_cuts: int
    batches: int
    width: int
    height: int
    lr_drop_steps: tuple[int, ...]  # steps from which the learning rate is a tenth of the one before
    save_every: int  # 0: only at the end
    display_every: int
    custom_losses: tuple[tuple[str, float], ...]  # (loss name, weight), each name once
    filters: tuple[tuple[str, float], ...]  # (filter name, weight), in order

    def displays(self, index: int) -> bool:
        """Whether step ``index``'s picture is shown: every ``display_every`` steps from step 0 (0: none)."""
        return self.display_every > 0 and index % self.display_every == 0


#: The kinds of part with a settings section each, by the registry that names them.
SECTION_KINDS: Mapping[str, Registry[Any]] = MappingProxyType({"drawer": DRAWERS, "loss": LOSSES,
                                                               "filter": FILTERS})


def _section_classes() -> dict[str, type]:
    """Options dataclass of every section: each drawer, then each custom loss, then each filter."""
    return {name: cls.Options for registry in SECTION_KINDS.values() for name, cls in registry.items()}


def section_kind(section: str) -> str:
    """What kind of part a settings section belongs to ("drawer", "loss", "filter"; "core")."""
    return next((kind for kind, registry in SECTION_KINDS.items() if section in registry), "core")


def group_title(sections: tuple[str, ...]) -> str:
    """The help group of settings held by ``sections``: "pixel, fast_pixel drawers", "palette loss,
    lookup filter"."""
    kinds = [section_kind(section) for section in sections]
    if len(set(kinds)) > 1:
        return ", ".join(f"{section} {kind}" for section, kind in zip(sections, kinds, strict=True))
    plural = {"loss": "losses"}.get(kinds[0], f"{kinds[0]}s")
    return f"{', '.join(sections)} {kinds[0] if len(sections) == 1 else plural}"


def _default_sections() -> Mapping[str, Any]:
    return MappingProxyType({name: options() for name, options in _section_classes().items()})


def all_specs() -> dict[str, Spec]:
    """Every setting of the tree by flat name: core first, then each drawer's and loss's section.

    Drawers may share a setting (``pixel_size`` for both pixel drawers) when its declaration is
    identical; the value then applies to every section that has it.
    """
    specs = {s.name: s for s in specs_of(Settings, "core")}
    for name, options in _section_classes().items():
        for s in specs_of(options, name):
            known = specs.setdefault(s.name, s)
            if known is not s and (known.section == "core" or dataclasses.replace(known, section=name) != s):
                raise TypeError(f"setting {s.name!r} of section {name!r} clashes with {known.section!r}")
    return specs


def sections_holding() -> dict[str, tuple[str, ...]]:
    """For each setting of a drawer or loss section, every section that has it (drawers may share
    one, as line_sketch and clipdraw share ``strokes``)."""
    holders: dict[str, tuple[str, ...]] = {}
    for name, options in _section_classes().items():
        for f in dataclasses.fields(options):
            holders[f.name] = (*holders.get(f.name, ()), name)
    return holders


def _flat_values(settings: Settings) -> dict[str, Any]:
    values = {s.name: getattr(settings, s.name) for s in specs_of(Settings, "core")}
    for section in settings.sections.values():
        values.update({f.name: getattr(section, f.name) for f in dataclasses.fields(section)})
    return values


def build_settings(*sources: Mapping[str, Any] | None) -> Settings:
    """Settings from flat ``name -> value`` mappings; later sources override earlier ones.

    Values may be text (as typed on a command line) or Python values (as read from YAML).
    Raises :class:`SettingsError` for an unknown name or a bad value.
    """
    specs = all_specs()
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in (source or {}).items():
            spec = specs.get(key)
            if spec is None:
                raise SettingsError(_unknown_key_message(key, value, list(specs)))
            merged[key] = coerce(spec, value)
    core = {k: v for k, v in merged.items() if specs[k].section == "core"}
    sections = {name: dataclasses.replace(opts, **{k: v for k, v in merged.items() if hasattr(opts, k)})
                for name, opts in _default_sections().items()}
    return Settings(**core, sections=MappingProxyType(sections))


#: Most characters of setting names an unknown-setting message lists (errors stay one short line).
_NAMES_SHOWN = 600


def _unknown_key_message(key: str, value: Any, valid: list[str]) -> str:
    close = difflib.get_close_matches(str(key), valid, n=1) if len(str(key)) <= 100 else []
    hint = renamed_setting_hint(str(key)) or (f" (did you mean {close[0]!r}?)" if close else "")
    names = ", ".join(valid)
    if len(names) > _NAMES_SHOWN:
        cut = names.rfind(", ", 0, _NAMES_SHOWN)
        names = f"{names[:cut]}, ... ({len(valid)} in all; pixray --help lists them)"
    return f"unknown setting {shown(key)} (value {shown(value)}){hint}; valid settings: {names}"


#: Most bytes of settings text read at once (Pixray's longest example files are ~2 KB).
MAX_SETTINGS_BYTES = 1 << 20
#: Deepest nesting of lists and mappings in settings text (settings are flat: a value holds a list at most).
MAX_SETTINGS_DEPTH = 8


class _SettingsLoader(yaml.SafeLoader):
    """YAML's safe loader without anchors and aliases, and with nesting bounded.

    An alias copies a node by reference, so a few hundred bytes of nested aliases describe
    millions of values; deep nesting makes the composer recurse past Python's stack. Neither has a
    use in a flat settings file.
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise SettingsError(f"YAML aliases (*name) are not allowed (line {mark.line + 1}); write "
                                "each value out")
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_SETTINGS_DEPTH:
            mark = self.peek_event().start_mark
            raise SettingsError(f"lists and mappings nested deeper than {MAX_SETTINGS_DEPTH} levels (line "
                                f"{mark.line + 1}); settings are 'name: value' lines")
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if key in seen:
                raise SettingsError(f"{shown(key)} is given twice (line {key_node.start_mark.line + 1}); "
                                    "give each setting once")
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_settings_text(text: str, origin: str = "settings") -> dict[str, Any]:
    """A flat mapping from YAML text of ``name: value`` lines (Pixray's Cog ``settings`` input)."""
    if len(text) > MAX_SETTINGS_BYTES:
        raise SettingsError(f"{origin}: {len(text)} characters is too long; expected at most "
                            f"{MAX_SETTINGS_BYTES}")
    try:
        data = yaml.load(text, Loader=_SettingsLoader) if text and text.strip() else {}
    except SettingsError as exc:
        raise SettingsError(f"{origin}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(exc, "problem", None) or "").split())[:100]
        if problem.startswith("could not determine a constructor"):
            problem = "a tag (!!name), which settings do not take"
        elif "'\\t'" in problem:
            problem += "; YAML takes spaces, not tabs"
        if "/" in problem:  # a server's errors never echo what could read as a path
            problem = ""
        where += f" ({problem})" if problem else ""
        raise SettingsError(f"{origin}: not valid YAML{where}: expected 'name: value' lines") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError(f"{origin}: expected 'name: value' lines, got {type(data).__name__}")
    return {str(k): v for k, v in data.items()}


#: The PNG text chunk holding the settings (YAML) a pixray image was made with.
SETTINGS_KEY = "pixray_settings"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def needs_init_size(settings: Settings) -> bool:
    """Whether the canvas takes its shape from the init image (:func:`resolve` needs its size)."""
    return settings.aspect == "retain" and settings.size is None and bool(settings.init_image)


def canvas_size(settings: Settings, init_size: tuple[int, int] | None = None) -> tuple[int, int]:
    """The canvas (width, height): ``size``, else the aspect's base size times ``scale``.

    Aspect 'retain' keeps the init image's shape (``init_size``) at Pixray's width of 144 x scale.
    """
    if settings.size is not None:
        return settings.size[0], settings.size[1]
    scale = (settings.scale if settings.scale is not None else EZ_SIZES[settings.ezsize] if settings.ezsize
             else QUALITY_PRESETS[settings.quality].scale)
    if settings.aspect != "retain":
        base_w, base_h = ASPECT_SIZES[settings.aspect]
        return int(base_w * scale), int(base_h * scale)
    if not settings.init_image:
        raise SettingsError("setting 'aspect': retain takes the canvas shape from init_image, and there is "
                            f"none; give init_image, or choose {', '.join(ASPECT_SIZES)} or a size")
    if init_size is None:
        raise ValueError("aspect 'retain' needs the init image's size (see needs_init_size)")
    width = int(RETAIN_WIDTH * scale)
    height = int(RETAIN_WIDTH * init_size[1] / init_size[0] * scale)
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise SettingsError(f"setting 'aspect': retain makes a {width}x{height} canvas from the "
                            f"{init_size[0]}x{init_size[1]} init_image, outside {MIN_SIDE}..{MAX_SIDE} "
                            "pixels a side; crop the image, or give size or another aspect")
    return width, height


def clip_models_of(settings: Settings) -> tuple[str, ...]:
    """The CLIP models a run loads: ``clip_models``, else the quality preset's."""
    return tuple(settings.clip_models or QUALITY_PRESETS[settings.quality].clip_models)


def parts_in_use(settings: Settings) -> list[tuple[str, str]]:
    """(kind, name) of every part a run with ``settings`` builds: its drawer, custom losses, filters."""
    return [("drawer", settings.drawer),
            *(("loss", split_loss_entry(entry)[0]) for entry in settings.custom_loss),
            *(("filter", split_loss_entry(entry)[0]) for entry in settings.filters)]


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The flat mapping in a YAML settings file, or the settings and seed a pixray PNG was made with
    (so ``pixray --config image.png`` makes that image again). The file is read once, so a pipe
    (``/dev/stdin``, a shell's ``<(...)``) works too."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(len(_PNG_SIGNATURE))
            if head == _PNG_SIGNATURE:
                return _png_settings(path)
            return read_settings_stream(f, f"settings file {str(path)!r}", head)
    except OSError as exc:
        raise SettingsError(f"cannot read settings file {str(path)!r}: {exc.strerror}") from exc


#: The most bytes a settings file's text may take: UTF-8 takes at most 4 a character.
_MAX_SETTINGS_FILE_BYTES = 4 * (MAX_SETTINGS_BYTES + 1)


def read_settings_stream(stream: BinaryIO, origin: str, head: bytes = b"") -> dict[str, Any]:
    """The flat mapping in YAML settings read from ``stream`` (after ``head``, bytes already read from
    it), UTF-8; ``origin`` names it in errors ("settings file 'x.yaml'", "standard input"). Reads no
    more than settings text may take."""
    data = head + stream.read(_MAX_SETTINGS_FILE_BYTES - len(head))
    if len(data) >= _MAX_SETTINGS_FILE_BYTES:
        raise SettingsError(f"{origin}: more than {MAX_SETTINGS_BYTES} characters is too long; expected at "
                            f"most {MAX_SETTINGS_BYTES}")
    if data.startswith(_PNG_SIGNATURE):
        raise SettingsError(f"{origin}: a PNG's settings are read from its file: give its path")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"{origin} is not UTF-8 text (byte {exc.start})") from exc
    return parse_settings_text(text, origin=origin)


def _png_settings(path: Path) -> dict[str, Any]:
    try:
        with Image.open(path) as img:
            chunks = dict(img.info)  # chunks before the pixels: nothing is decoded
    except (OSError, Image.DecompressionBombError) as exc:
        raise SettingsError(f"cannot read settings from {str(path)!r}: not a readable PNG") from exc
    text = chunks.get(SETTINGS_KEY)
    given = parse_settings_text(text, origin=f"settings in {path}") if isinstance(text, str) else \
        _pixray_chunks(chunks)
    if isinstance(text, str) or given:
        # Where the image was written is not how it was made: a re-run goes to a new outdir (the one it
        # came from holds the image, and writing there was refused).
        return {name: value for name, value in given.items() if name not in _WHERE_WRITTEN}
    raise SettingsError(f"{str(path)!r} holds no pixray settings (no {SETTINGS_KEY!r} text chunk, nor "
                        "Pixray's 'pixray_<setting>' chunks); give a YAML file or an image pixray or "
                        "Pixray made")


#: Settings an image records that say where it was written, not how it was made.
_WHERE_WRITTEN = ("outdir", "output", "overwrite")
#: ``pixray_<name>`` chunks that are not settings: Pixray's seed after hashing, and this project's own.
_NOT_SETTING_CHUNKS = ("seed_used", "iteration", "prompts_in_force")


def _pixray_chunks(chunks: Mapping[str, Any]) -> dict[str, Any]:
    """The settings an image made by Pixray itself records: a ``pixray_<name>`` text chunk for each
    setting it was given (Python's ``str`` of the value: a list as ``[384, 216]``) and the seed it
    used in ``pixray_seed_used`` (a seed given in words, hashed)."""
    specs = all_specs()
    given: dict[str, Any] = {}
    for key, value in chunks.items():
        if not (isinstance(key, str) and key.startswith("pixray_") and isinstance(value, str)):
            continue
        name = key.removeprefix("pixray_")
        if name in _NOT_SETTING_CHUNKS:
            continue
        spec = specs.get(name)
        is_list = spec is not None and spec.is_list and value.lstrip().startswith("[")
        # Numbers and true/false as values ("3", "False"), as a YAML file gives them; a text stays text.
        plain = spec is not None and not spec.is_list and spec.value_type in (bool, int, float)
        given[name] = _list_text(value, name) if is_list else _scalar_text(value) if plain else value
    if given and isinstance(chunks.get("pixray_seed_used"), str):
        given["seed"] = _scalar_text(chunks["pixray_seed_used"])
    return given


def _scalar_text(value: str) -> Any:
    """``value`` as YAML reads it when that is a number or true/false; else the text itself."""
    try:
        read = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return read if isinstance(read, (bool, int, float)) else value


def _list_text(value: str, name: str) -> Any:
    """Python's ``str`` of a list (``[384, 216]``, ``['ViT-B/32']``) as the list: YAML reads it."""
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        raise SettingsError(f"setting {name!r}: {shown(value)} in the image's metadata is not a "
                            "list") from None


def resolve(settings: Settings, init_size: tuple[int, int] | None = None) -> Plan:
    """Apply the quality and aspect presets: the concrete numbers of a run.

    ``init_size`` is the init image's (width, height): aspect 'retain' needs it (see
    :func:`needs_init_size`).
    """
    preset = QUALITY_PRESETS[settings.quality]
    width, height = canvas_size(settings, init_size)
    iterations = settings.iterations if settings.iterations is not None else preset.iterations
    # Pixray drops the rate once the step at the point (of iterations - 1) is done.
    drops = {iterations_of(point, iterations - 1) + 1 for point in settings.learning_rate_drops}
    losses = dict(split_loss_entry(entry) for entry in settings.custom_loss)
    return Plan(
        clip_models=clip_models_of(settings),
        iterations=iterations,
        num_cuts=settings.num_cuts if settings.num_cuts is not None else preset.num_cuts,
        batches=settings.batches if settings.batches is not None else preset.batches,
        width=width,
        height=height,
        lr_drop_steps=tuple(sorted(step for step in drops if step < iterations)),
        save_every=iterations_of(settings.save_every, iterations),
        display_every=iterations_of(settings.display_every, iterations),
        custom_losses=tuple(losses.items()),
        filters=tuple(split_loss_entry(entry) for entry in settings.filters),
    )
