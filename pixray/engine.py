"""The optimisation loop: settings -> drawer.synth -> cutouts -> perceptors -> prompt losses -> step.

:class:`Run` prepares everything from settings (and perceptors already loaded, if given) and is
iterated for :class:`Step` objects (through :meth:`Run.drawn_and_steps`, with a :class:`Drawn` picture
before the pass of the steps a caller shows); callers decide what to save or show. Nothing in the loop
copies values to the host: losses stay tensors until a caller asks for a number.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image

from .auto_stop import PATIENCE, AutoStop
from .cutouts import CUT_METHODS, CutoutParams, Cutouts
from .drawers import DRAWERS, Drawer, VectorImage
from .errors import MissingWeightsError, RunError
from .filter_chain import FilterChain
from .image_labels import ImageLabels
from .init_images import ImageReader, fitted, to_pil
from .init_losses import InitLosses, check_init_weights
from .init_noise import noise_image
from .losses import LOSSES, LossContext
from .model_cache import ModelCache, models_for, require_weights
from .optimisers import OPTIMISERS
from .options import SettingsError
from .overlay import Overlay
from .perceptors import Perceptor, check_clip_model
from .perceptors.graphed_pass import GraphedPasses, graphs_possible
from .prompt_sources import PROMPT_SOURCES, CutTarget, PromptSource, StepViews, Targets
from .prompts import paired_loss, prompt_loss
from .resources import Resources
from .runtime import (
    autocast,
    choose_device,
    choose_precision,
    cudnn_deterministic,
    memory_errors_said,
    usable_memory,
    weights_precision,
)
from .settings import Plan, Settings, clip_models_of, needs_init_size, resolve

log = logging.getLogger(__name__)

#: On the CPU, the most activation rows (:attr:`Perceptor.positions` per cutout) one perceptor pass
#: takes: 24 cutouts of ViT-B/16 or RN50 at 224, 94 of ViT-B/32; more are scored in several passes,
#: one graph alive at a time (see :meth:`Run._passes`). In bfloat16 (or float16) the more cutouts a
#: pass takes, the less each costs (oneDNN's matmuls run nearer their peak) and the more memory the
#: pass holds; float32's cost as much per cutout at half the size, and so do passes on a machine with
#: less than :data:`SMALL_MEMORY` to use, which take half as many (docs/performance.md has the figures).
CPU_PASS_POSITIONS = 24 * 197
SMALL_MEMORY = 8 * 2**30


def cpu_pass_positions(memory: int, dtype: torch.dtype) -> int:
    """The most activation rows a CPU perceptor pass computing in ``dtype`` takes where ``memory``
    bytes may be used."""
    wide = dtype != torch.float32 and memory >= SMALL_MEMORY
    return CPU_PASS_POSITIONS if wide else CPU_PASS_POSITIONS // 2


@dataclass(frozen=True)
class Step:
    """One optimisation step.

    ``image`` (1,3,H,W) in [0,1] is the picture the step scored (for the final step: after the
    last update), or (1,4,H,W) with straight opacity for drawers drawing with it (the perceptors
    saw it over a random grey): the drawer's image through the filters that make the picture (a
    palette lookup), never those that only change how the perceptors view it (a tiler's roll).
    ``losses`` maps each perceptor name, each weighted custom, filter, init and opacity loss, and
    ``"total"`` to a 0-d tensor on the run's device; ``vector``, for drawers that draw vector
    pictures, is the same state as ``image``, to write as SVG; ``prompts``, for prompts in phases
    (``a ^ b``), those in force.
    """

    index: int
    image: torch.Tensor
    losses: dict[str, torch.Tensor]
    is_final: bool
    vector: VectorImage | None = None
    prompts: str | None = None  # the text prompts in force, when they come in phases

    def pil(self) -> Image.Image:
        """The image as a PIL image: RGB, or RGBA where it has an opacity (pixel's ``transparent``)."""
        return to_pil(self.image)

    @property
    def loss(self) -> float:
        """The total loss as a float (waits for the device)."""
        return float(self.losses["total"])


@dataclass(frozen=True)
class Drawn:
    """A step's picture the moment the drawer has made it, before the perceptors score it: the
    :class:`Step` of the same ``index`` follows one perceptor pass later with the same ``image``,
    ``vector`` and ``prompts`` (see :class:`Step`). For callers that show pictures as they come, so
    that showing one need not wait for its pass (:meth:`Run.drawn_and_steps`)."""

    index: int
    image: torch.Tensor
    vector: VectorImage | None = None
    prompts: str | None = None

    def pil(self) -> Image.Image:
        """The image as a PIL image, as :meth:`Step.pil`."""
        return to_pil(self.image)


def _backward_all(outputs: list[torch.Tensor], grads: list[torch.Tensor | None] | None = None,
                  together: bool = True) -> None:
    """Backpropagate ``outputs`` (with ``grads``): in one pass when their graphs share nodes
    (``together``), else one after another, in order, as the gradients have always accumulated."""
    grads = grads or [None] * len(outputs)
    if together and outputs:
        torch.autograd.backward(outputs, grads)
        return
    for output, grad in zip(outputs, grads, strict=True):
        output.backward(grad)


@dataclass(frozen=True)
class PromptView:
    """Prompts seen through one view of the canvas: ``region`` None for the whole canvas, else
    (1,1,H,W) of 0s and 1s, the part they see; ``targets`` per perceptor."""

    region: torch.Tensor | None
    sources: tuple[PromptSource, ...]
    targets: list[Targets]
    #: The region stretched to each other canvas size a filter shows, made once.
    _stretched: dict[tuple[int, int], torch.Tensor] = field(default_factory=dict, compare=False, repr=False)

    def seen(self, canvas: torch.Tensor) -> torch.Tensor:
        """``canvas`` (1,C,h,w) as these prompts see it: whole, or black outside the region, which is
        stretched over it when a filter made the canvas another size (wallpaper's shift: two rows)."""
        if self.region is None:
            return canvas
        size = tuple(canvas.shape[-2:])
        if size == tuple(self.region.shape[-2:]):
            return canvas * self.region
        if size not in self._stretched:
            self._stretched[size] = F.interpolate(self.region, size=size, mode="nearest")
        return canvas * self._stretched[size]


def _drop_rate(optimiser: torch.optim.Optimizer) -> None:
    for group in optimiser.param_groups:
        group["lr"] /= 10


def plan_for(settings: Settings, images: ImageReader) -> Plan:
    """The run's concrete numbers; with aspect 'retain', the canvas from the init image's header."""
    init_size = images.size(settings.init_image, "init_image") if needs_init_size(settings) else None
    return resolve(settings, init_size)


class Run:
    """One generation, ready to iterate.

    ``models``: where CLIP and drawer models are loaded and kept (a :class:`ModelCache` that
    outlives the run, e.g. a server's); None makes one for this run from the weights directory.
    ``perceptors``: an explicit CLIP ensemble to use instead of the settings' clip_models.
    ``images``: how image files named by settings are read (a server allows only uploads).
    ``memory``: the bytes this run may count on, where other processes share the machine (a batch's
    workers); None: what the process may use (:func:`~pixray.runtime.usable_memory`).
    """

    def __init__(self, settings: Settings, perceptors: Sequence[Perceptor] | None = None,
                 models: ModelCache | None = None, images: ImageReader | None = None,
                 memory: int | None = None) -> None:
        self.settings = settings
        images = images or ImageReader()
        self.plan: Plan = plan_for(settings, images)
        check_init_weights(settings)
        self.prompt_sources = [source for kind in PROMPT_SOURCES.values()
                               if (source := kind.from_settings(settings, self.plan, images)) is not None]
        if not any(source.steers for source in self.prompt_sources):
            raise SettingsError("setting 'prompts' is empty; give at least one text prompt, such as "
                                "'a red circle on a blue background' (or image_prompts, "
                                "target_images, labels, spot_prompts or noise_prompt_seeds)")
        self.device = choose_device(settings.device, settings.cuda_device)
        self.dtype = choose_precision(settings.precision, self.device)
        # Read once: the memory a container may use does not change during a run. Unused off the CPU.
        if memory is None:
            memory = usable_memory()
        self.pass_positions = cpu_pass_positions(memory, self.dtype) if self.device.type == "cpu" else 0
        #: Every how many steps the loop reads whether a loss stopped being finite: on a GPU the read
        #: waits for the device, so every 10th step; on the CPU it costs nothing.
        self.finite_check_every = 1 if self.device.type == "cpu" else 10
        self._on_device: dict[int, torch.Tensor] = {}  # prompt sources' images moved to the device
        self.seed = settings.seed if settings.seed is not None else secrets.randbelow(2**31)
        self._final: Step | None = None  # the last final step iterated to
        drawer_cls = DRAWERS.lookup(settings.drawer)
        planned = [p.name for p in perceptors] if perceptors is not None else list(self.plan.clip_models)
        self._planned_models = planned
        if perceptors is None:
            for name in planned:  # a misspelt name, before a drawer's missing weights are reported
                check_clip_model(name)
        drawer_cls.check_perceptors(settings.section(settings.drawer), planned)
        if settings.auto_stop and drawer_cls.follows_schedule:
            raise SettingsError(f"setting 'auto_stop' cannot end a {settings.drawer!r} run early: its "
                                f"picture follows a schedule of all {self.plan.iterations} iterations; "
                                "leave auto_stop false")
        models = models or ModelCache.for_settings(settings)  # nothing loaded yet
        resources = Resources(models, images)
        self.filters = FilterChain.from_settings(settings, self.plan, resources, self.device)
        self.init_image = (images.read(settings.init_image, self.plan.width, self.plan.height, "init_image")
                           if settings.init_image else None)
        self.overlay = Overlay.from_settings(settings, self.plan, images)
        self.image_labels = ImageLabels.from_settings(settings, self.plan, images)
        # Last: loading models is the slow part, so every other mistake is reported first. Missing
        # weight files of several models are said at once (require_weights), but only once the parts'
        # own settings have been checked as they are created.
        clips = set(clip_models_of(settings)) if perceptors is not None else set()
        needed = [name for name in models_for(settings) if name not in clips]
        with memory_errors_said(self.device, lambda: "loading the models", self._asked()):
            try:
                # name -> (loss, its weight: Pixray's 'name:weight')
                self.custom_losses = {name: (LOSSES.lookup(name).create(settings.section(name), resources)
                                             .to(self.device), weight)
                                      for name, weight in self.plan.custom_losses}
                self.drawer: Drawer = drawer_cls.create(settings.section(settings.drawer), self.plan.width,
                                                        self.plan.height, models).to(self.device)
            except MissingWeightsError:
                require_weights(needed, models.weights_dir)  # raises for all, when more than this one miss
                raise
            require_weights(needed, models.weights_dir)
            weights = weights_precision(self.device, self.dtype)
            self.perceptors = ([p.to(self.device) for p in perceptors] if perceptors is not None
                               else models.perceptors(self.plan.clip_models, weights))
        self.learning_rate = settings.learning_rate or self.drawer.learning_rate(self.init_image is not None)
        # Loss names: a perceptor's name, numbered when the ensemble holds it more than once.
        names = [p.name for p in self.perceptors]
        self.perceptor_labels = [name if names.count(name) == 1 else f"{name} #{names[:i + 1].count(name)}"
                                 for i, name in enumerate(names)]
        for loss_fn, _ in self.custom_losses.values():
            loss_fn.check_perceptors(self.perceptor_labels, [p.embed_width for p in self.perceptors])
        # One cutout maker per distinct input resolution, with the perceptors that share it.
        sizes = sorted({p.input_resolution for p in self.perceptors})
        resolutions = [p.input_resolution for p in self.perceptors]
        recipe = CUT_METHODS[settings.cut_method]
        self.cut_groups = [(recipe(size, crop_power=settings.cut_pow),
                            [i for i, r in enumerate(resolutions) if r == size]) for size in sizes]
        zoom = settings.cut_zoom_padding
        self.zoom_fill = None if zoom == "grey" else zoom
        graphed = settings.cuda_graphs and graphs_possible(self.device)
        self.graphed_passes = GraphedPasses(self.dtype) if graphed else None

    def __iter__(self) -> Iterator[Step]:
        return self.steps()

    def final_image(self) -> Image.Image:
        """The final image: of the last time this run was iterated to its end, else of running it to
        the end now. (Each iteration of a run starts it again from its seed.)"""
        return (self._final or deque(self.steps(), maxlen=1)[0]).pil()

    def steps(self) -> Iterator[Step]:
        """Steps 0 .. iterations-1, then the final step (index = iterations, is_final=True); with
        ``auto_stop``, maybe fewer, the final step's index the number of steps done. Running out of
        memory is a :class:`RunError` saying so."""
        for item in self.drawn_and_steps(lambda index: False):
            assert isinstance(item, Step)
            yield item

    def drawn_and_steps(self, wanted: Callable[[int], bool]) -> Iterator[Drawn | Step]:
        """As :meth:`steps`, with a :class:`Drawn` just before the perceptor pass of each step whose
        index ``wanted`` accepts: that step's picture, a pass before its :class:`Step`."""
        done = 0

        def when() -> str:
            return f"at step {done}"

        with memory_errors_said(self.device, when, self._asked()):
            for item in self._steps(wanted):
                if isinstance(item, Drawn):
                    yield item
                    continue
                if item.is_final:
                    self._final = item
                yield item
                done = item.index + 1

    def _asked(self) -> str:
        """What this run asks of its device's memory, in its settings' words."""
        plan = self.plan
        return (f"a {plan.width}x{plan.height} canvas, num_cuts {plan.num_cuts} x batches {plan.batches}, "
                f"clip_models {', '.join(self._planned_models)}")

    def _steps(self, wanted: Callable[[int], bool]) -> Iterator[Drawn | Step]:
        generator = torch.Generator(self.device).manual_seed(self.seed)
        width, height = self.drawer.width, self.drawer.height  # a drawer may round the canvas
        start = self._start(width, height, generator)
        self.drawer.start_run(self.plan.iterations)
        self.drawer.init_from_image(start.to(self.device), generator)
        self.init_losses = InitLosses(self.settings, self.drawer, self.init_image)
        if self.image_labels is not None:
            self.image_labels.bind(self.drawer)
        views = self._prompt_views(height, width)
        self.drawer.condition(self._whole_canvas_prompts(views))
        optimiser = self._optimiser(self.learning_rate)
        drops = () if self.drawer.follows_schedule else self.plan.lr_drop_steps
        losses: dict[str, torch.Tensor] = {}
        check_every = self.finite_check_every
        nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)
        stopper = AutoStop(len(self.plan.lr_drop_steps)) if self.settings.auto_stop else None
        for index in range(self.plan.iterations):
            if index in drops:
                _drop_rate(optimiser)
                if stopper is not None:
                    stopper.dropped(index)
            optimiser.zero_grad(set_to_none=True)
            if self.overlay is not None and self.overlay.due(index):
                self.overlay.apply(self.drawer)
            with cudnn_deterministic(self.settings.cudnn_determinism):
                image = self._synth()
            vector = self.drawer.vector_image()  # before the update, as the image
            shown, prompts = self.filters.shown(image.detach()), self.prompts_in_force(index)
            if wanted(index):
                yield Drawn(index, shown, vector, prompts)
            with cudnn_deterministic(self.settings.cudnn_determinism):
                losses = self._backward(image, views, generator, index)
            nonfinite |= ~losses["total"].isfinite()
            if (index % check_every == 0 or index == self.plan.iterations - 1) and bool(nonfinite):
                raise RunError(self._nonfinite_message(index, losses))
            verdict = stopper.observe(index, losses, self.drawer) if stopper is not None else None
            optimiser.step()
            self.drawer.clamp_()
            if (rate := self.drawer.end_step(index)) is not None:
                optimiser = self._optimiser(rate)
            yield Step(index, shown, losses, is_final=False, vector=vector, prompts=prompts)
            if verdict == "drop":
                _drop_rate(optimiser)
            elif verdict == "stop":
                log.info("auto_stop: no better loss for %d steps after the last drop (step %d)",
                         PATIENCE, index)
                break
        done = index + 1  # iterations is at least 1
        if stopper is not None and stopper.best_index >= 0:  # auto_stop ends on the best image it scored
            losses = stopper.best_losses
            stopper.restore_best(self.drawer)
        with torch.no_grad(), cudnn_deterministic(self.settings.cudnn_determinism):
            final = self.filters.shown(self._synth())
        yield Step(done, final, losses, is_final=True, vector=self.drawer.vector_image(),
                   prompts=self.prompts_in_force(done - 1))

    def _synth(self) -> torch.Tensor:
        """The drawer's image, float32, (1,C,H,W) in [0,1]; computed in bfloat16 when the run computes
        in it and the drawer allows it (:attr:`Drawer.synth_in_run_precision`). float16, whose range
        is far narrower than float32's, would risk overflowing a decoder's activations."""
        if not self.drawer.synth_in_run_precision or self.dtype != torch.bfloat16:
            return self.drawer.synth()
        with autocast(self.device, self.dtype):
            return self.drawer.synth().float()

    def _optimiser(self, rate: float) -> torch.optim.Optimizer:
        """A fresh optimiser over the drawer's parameter groups at step size ``rate``."""
        groups = [{**group, "lr": rate * group.get("lr_scale", 1.0)} for group in self.drawer.param_groups()]
        return OPTIMISERS.lookup(self.settings.optimiser)(groups, lr=rate)

    def _whole_canvas_prompts(self, views: list[PromptView]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per perceptor name (the first of that name), the embeddings and weights of the prompts on
        the whole canvas (none when every prompt has a region)."""
        whole = next((view for view in views if view.region is None), None)
        prompts = {}
        for i, perceptor in enumerate(self.perceptors):
            if perceptor.name not in prompts:
                targets = whole.targets[i] if whole is not None else None
                prompts[perceptor.name] = ((targets.embeds, targets.weights) if targets is not None else
                                           (torch.zeros(0, perceptor.embed_width, device=self.device),
                                            torch.zeros(0, device=self.device)))
        return prompts

    def _start(self, width: int, height: int, generator: torch.Generator) -> torch.Tensor:
        """The canvas the drawer starts from, (1,3,height,width): the init image (over the init
        noise at ``init_image_alpha``), else the init noise."""
        alpha = self.settings.init_image_alpha
        if self.init_image is None or alpha is not None:
            noise = noise_image(self.settings.init_noise, width, height, generator)
        if self.init_image is None:
            return noise
        image = fitted(self.init_image.cpu(), height, width)
        return image if alpha is None else alpha / 255 * image + (1 - alpha / 255) * noise.to(image)

    def _nonfinite_message(self, index: int, losses: dict[str, torch.Tensor]) -> str:
        bad = [name for name, value in losses.items() if name != "total" and not value.isfinite()]
        return (f"the loss is not a finite number at step {index} (from {', '.join(bad) or 'the total'}); "
                f"the image would be meaningless, so the run stops. Lower learning_rate "
                f"({self.learning_rate:g}) or the prompt and loss weights")

    def _prompt_views(self, height: int, width: int) -> list[PromptView]:
        """The views of the canvas the prompts see, with their prompts encoded once per run: the
        whole canvas for every source without a region (when there is one), then each region."""
        regions = [(source, source.region(height, width)) for source in self.prompt_sources]
        whole = [source for source, region in regions if region is None]
        views = [PromptView(None, tuple(whole), self._encode_prompts(whole))] if whole else []
        for source, region in regions:
            if region is not None:
                views.append(PromptView(region.to(self.device), (source,), self._encode_prompts([source])))
        return views

    @torch.no_grad()
    def _encode_prompts(self, sources: Sequence[PromptSource]) -> list[Targets]:
        """Per perceptor, the prompts of ``sources``."""
        encoded = []
        for perceptor in self.perceptors:
            with autocast(self.device, self.dtype):
                targets = Targets.cat([source.encode(perceptor) for source in sources])
            encoded.append(Targets(targets.embeds.float(), targets.weights.float(), targets.stops.float(),
                                   *targets.span()))
        return encoded

    def prompts_in_force(self, index: int) -> str | None:
        """The text prompts in force at step ``index``, when they come in phases (else None)."""
        texts = [text for source in self.prompt_sources if (text := source.in_force(index)) is not None]
        return " | ".join(texts) if texts else None

    def _views(self, cutouts: Cutouts, params: CutoutParams, zoom: str | None, generator: torch.Generator,
               padding: str) -> StepViews:
        """How this step's cutouts see other images (image prompts): each image is cut once per
        cut group, whichever of the group's perceptors asks."""
        made: dict[tuple[bool, int], torch.Tensor] = {}

        def view(image: torch.Tensor, own: bool) -> torch.Tensor:
            key = (own, id(image))
            if key not in made:
                # Moved once a run: a copy from host memory each step would make a GPU's host wait.
                if id(image) not in self._on_device:
                    self._on_device[id(image)] = image.to(self.device)
                image = self._on_device[id(image)]
                cut, cut_zoom = (cutouts.params_for(image, self.plan.num_cuts, generator, self.zoom_fill)
                                 if own else (params, zoom))
                made[key] = cutouts.apply(image, cut, generator, padding, cut_zoom)
            return made[key]

        def same(image: torch.Tensor) -> torch.Tensor:
            return view(image, own=False)

        def fresh(image: torch.Tensor) -> torch.Tensor:
            return view(image, own=True)

        return StepViews(same, fresh)

    def _cut_targets(self, i: int, sources: Sequence[PromptSource], views: StepViews) -> list[CutTarget]:
        """Perceptor ``i``'s targets of ``sources`` seen through this step's cutouts (embeddings
        (N,D), one per cutout)."""
        found = []
        for source in sources:
            with torch.no_grad(), autocast(self.device, self.dtype):
                found += source.cut_targets(self.perceptors[i], views)
        return found

    def _passes(self, i: int, count: int, together: bool = False) -> list[slice]:
        """The parts of ``count`` cutouts perceptor ``i`` scores in a pass each: on the CPU, near-equal
        parts of at most :attr:`pass_positions` activation rows (each pass's activations are freed by
        its backward before the next one runs, and the matmuls stay large); elsewhere, or ``together``
        (a custom loss needs all their embeddings at once), all at once (a GPU step is bound by
        kernel launches)."""
        if together or self.device.type != "cpu":
            return [slice(0, count)]
        most = max(1, self.pass_positions // self.perceptors[i].positions)
        parts = -(-count // most)
        bounds = [round(k * count / parts) for k in range(parts + 1)]
        return [slice(start, end) for start, end in itertools.pairwise(bounds)]

    def _encode(self, i: int, cutouts: torch.Tensor, replayable: bool) -> torch.Tensor:
        """Perceptor ``i``'s (N,D) float32 embeddings of ``cutouts`` (N,3,R,R) in [0,1]: replayed as a CUDA
        graph where the run uses graphs, the pass is ``replayable`` (its backward runs before this
        perceptor's next pass) and it could be captured, else computed by the perceptor."""
        if self.graphed_passes is not None and replayable:
            embeds = self.graphed_passes.encode(self.perceptors[i], cutouts)
            if embeds is not None:
                return embeds
        with autocast(self.device, self.dtype):
            return self.perceptors[i].encode_image(cutouts).float()

    def _flatten(self, drawn: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The canvas the losses see (``drawn`` itself when it has no opacity), and the opacity's
        own loss (None without opacity or weight).

        An RGBA image is seen over one random grey per step, as Pixray does, so that only what is
        opaque can match the prompts wherever the background falls; ``transparent_weight`` times
        the mean opacity is added.
        """
        if drawn.shape[1] != 4:
            return drawn, None
        grey = torch.rand((), generator=generator, device=drawn.device)
        opacity = drawn[:, 3:]
        weight = self.settings.transparent_weight
        return drawn[:, :3] * opacity + grey * (1 - opacity), (weight * opacity.mean() if weight else None)

    def _padding(self, index: int) -> str:
        """The padding mode of step ``index``'s crop views."""
        padding = self.settings.cut_padding
        if padding == "alternate":  # Pixray's
            return "reflection" if index % 2 == 0 else "border"
        return padding

    def _backward(self, image: torch.Tensor, prompt_views: list[PromptView], generator: torch.Generator,
                  index: int) -> dict[str, torch.Tensor]:
        """Accumulate the gradient of ``batches`` cutout batches, with the custom losses of each,
        and of the filters', init and image-label losses, into the drawer's parameters.

        The CLIP passes backpropagate into a detached copy of the canvas, so the drawer's render
        runs once per step however many batches there are; each perceptor's pass backpropagates
        into a detached copy of its cutouts before the next one runs, so one perceptor's graph is
        alive at a time (peak memory: the largest perceptor's, not the sum), unless a custom loss
        looks at the embeddings. A region's prompts see the canvas black outside it, through the
        same cutouts as the whole canvas's.
        """
        drawn = image.detach().requires_grad_(True)
        filtered, losses = self.filters(drawn, generator)
        flat, opacity_loss = self._flatten(filtered, generator)
        canvas = flat if flat is drawn else flat.detach().requires_grad_(True)
        totals = torch.zeros(len(self.perceptors), device=self.device)
        custom = {name: torch.zeros((), device=self.device) for name in self.custom_losses}
        for _ in range(self.plan.batches):
            self._score_batch(canvas, prompt_views, generator, index, totals, custom)
        # Losses of the canvas alone do not change from batch to batch: once per step.
        context = LossContext(canvas, {}, {}, index, self.plan.iterations, generator)
        for name, (loss_fn, weight) in self.custom_losses.items():
            if not (loss_fn.uses_cutouts or loss_fn.uses_embeds):
                value = weight * loss_fn(context)
                if value.requires_grad:  # a loss resting this step (style before its skip) is a constant
                    value.backward()
                custom[name] = value.detach()
        losses = {**dict(zip(self.perceptor_labels, totals, strict=True)), **losses, **custom}
        parameter_losses = self.init_losses(canvas)
        if self.image_labels is not None:
            parameter_losses.update(self.image_labels())
        for name, value in parameter_losses.items():
            value.backward()
            losses[name] = value.detach()
        # On through the flattening and the filters to the drawn image, with the filters' losses.
        outputs, grads = [], []
        if canvas is not drawn:
            outputs.append(flat)
            grads.append(canvas.grad)
        if opacity_loss is not None:
            outputs.append(opacity_loss)
            grads.append(None)
            losses["transparent"] = opacity_loss.detach()
        for name in self.filters.names():
            if name in losses and losses[name].requires_grad:
                outputs.append(losses[name])
                grads.append(None)
                losses[name] = losses[name].detach()
        _backward_all(outputs, grads, together=bool(self.filters.names()))  # filters share their graph
        if image.requires_grad:  # not when nothing drawn shows (every stroke moved off the canvas)
            image.backward(drawn.grad)
        losses["total"] = torch.stack(list(losses.values())).sum()
        return losses

    def _score_batch(self, canvas: torch.Tensor, prompt_views: list[PromptView], generator: torch.Generator,
                     index: int, totals: torch.Tensor, custom: dict[str, torch.Tensor]) -> None:
        """One cutout batch: each perceptor's prompt losses and the custom losses that look at the
        cutouts or embeddings, backpropagated into ``canvas``; their values (divided by the number
        of batches) added to ``totals`` (per perceptor) and ``custom`` (by name)."""
        batches, padding = self.plan.batches, self._padding(index)
        keep_cutouts = any(loss.uses_cutouts for loss, _ in self.custom_losses.values())
        keep_embeds = any(loss.uses_embeds for loss, _ in self.custom_losses.values())
        seen_whole: dict[int, torch.Tensor] = {}  # input resolution -> the whole canvas's cutouts
        embeds_whole: dict[str, torch.Tensor] = {}
        pending: list[torch.Tensor] = []  # losses whose backward waits for the custom losses
        cut_graphs: list[tuple[torch.Tensor, torch.Tensor]] = []  # (cutouts, their detached copy)
        for cutouts, members in self.cut_groups:
            params, zoom = cutouts.params_for(canvas, self.plan.num_cuts, generator, self.zoom_fill)
            views = self._views(cutouts, params, zoom, generator, padding)
            for view in prompt_views:
                whole = view.region is None
                cuts = cutouts.apply(view.seen(canvas), params, generator, padding, zoom)
                seen = cuts.detach().requires_grad_(True)
                for i in members:
                    targets = view.targets[i]
                    # Prompts out of force this step weigh nothing (no wait for the device).
                    weights = targets.weights * ((targets.starts <= index) & (index < targets.ends))
                    cut_targets = self._cut_targets(i, view.sources, views)
                    held = keep_embeds and whole  # the custom losses read these embeddings
                    passes = self._passes(i, len(seen), together=held)
                    for part in passes:
                        embeds = self._encode(i, seen[part], replayable=not held)
                        loss = prompt_loss(embeds, targets.embeds, weights, targets.stops).sum()
                        paired: torch.Tensor | float = 0.0
                        for target in cut_targets:
                            paired = paired + paired_loss(embeds, target.embeds[part].float(), target.weight,
                                                          target.stop)
                        loss = loss + paired
                        if len(passes) > 1:
                            # Every loss here is a mean over cutouts, so the passes' shares add up to it.
                            loss = loss * ((part.stop - part.start) / len(seen))
                        if held:
                            embeds_whole[self.perceptor_labels[i]] = embeds
                            pending.append(loss / batches)
                        else:
                            (loss / batches).backward()
                        totals[i] += loss.detach() / batches
                if whole and (keep_cutouts or keep_embeds):
                    seen_whole[cutouts.cut_size] = seen
                    cut_graphs.append((cuts, seen))
                else:
                    cuts.backward(seen.grad)
        if keep_cutouts or keep_embeds:
            context = LossContext(canvas, seen_whole if keep_cutouts else {}, embeds_whole, index,
                                  self.plan.iterations, generator)
            for name, (loss_fn, weight) in self.custom_losses.items():
                if loss_fn.uses_cutouts or loss_fn.uses_embeds:
                    value = weight * loss_fn(context) / batches
                    pending.append(value)
                    custom[name] += value.detach()
        _backward_all([value for value in pending if value.requires_grad], together=keep_embeds)
        for cuts, seen in cut_graphs:  # the custom losses' gradient joins the prompts' first
            if seen.grad is not None:
                cuts.backward(seen.grad)
