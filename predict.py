"""Cog entry point (cog.yaml ``run: predict.py:Predictor``): a thin mapping onto pixray.serving.

Input descriptions, bounds and choices come from pixray's settings tree; every other setting is
reachable through the ``settings`` input (``name: value`` lines, as in Pixray). An input left unset
(None) leaves its setting to the ``settings`` text, then the server's base settings, then the default.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator

from cog import BaseRunner, Input, Path, current_scope, streaming

from pixray.runtime import fit_threads_to_cpus, keep_freed_memory
from pixray.serving import Request, Service, input_field


class Predictor(BaseRunner):
    def setup(self) -> None:
        """Load the CLIP and drawer models once (fetching missing weight files when online)."""
        # A prediction's logs (what Cog returns and Replicate shows) carry pixray's progress lines.
        logging.basicConfig(level=logging.INFO, format="pixray: %(message)s")
        keep_freed_memory()  # its one-arena part comes too late here: cog.yaml's environment has it
        fit_threads_to_cpus()  # a container's CPU quota, not the host's cores
        self.service = Service.from_environment()
        # Cog saves the files a request sends (URLs, data URIs) with tempfile: into the one directory
        # whose files a request may read. This process is the server's own, so its default is ours to set.
        tempfile.tempdir = str(self.service.uploads)

    @streaming
    def run(
        self,
        prompts: str | None = Input(**{**input_field("prompts", nullable=True), "description":
                                       "Text prompts, '|'-separated; each is 'text', 'text:weight' or "
                                       "'text:weight:stop'; a negative weight pushes away (unset: from "
                                       "settings)"}),
        drawer: str | None = Input(**input_field("drawer", nullable=True)),
        quality: str | None = Input(**input_field("quality", nullable=True)),
        aspect: str | None = Input(**input_field("aspect", nullable=True)),
        iterations: int | None = Input(**input_field("iterations")),
        seed: int | None = Input(**{**input_field("seed"), "description": "Random seed; chosen at random "
                                    "and recorded when unset (a text seed goes in settings: 'seed: words')"}),
        display_every: int | None = Input(**{**input_field("display_every", nullable=True), "ge": 0,
                                             "le": 100000, "description":
                                             "Stream an image every N steps (0: only the final one; "
                                             "unset: from settings, else 10; '5%' in settings)"}),
        init_image: Path | None = Input(default=None, description="Image the drawer starts from"),
        image_prompts: list[Path] | None = Input(
            default=None, description="Images each canvas cutout is pulled towards through the same cutout "
                                      "(image_prompt_weight and image_prompt_shuffle in settings)"),
        target_images: list[Path] | None = Input(
            default=None, description="Images whose CLIP embeddings pull like text prompts"),
        image_labels: list[Path] | None = Input(
            default=None, description="Images the drawer's parameters are pulled towards, averaged "
                                      "(image_label_weight in settings; drawers that take their parameters "
                                      "from an image)"),
        overlay_image: Path | None = Input(
            default=None, description="Image pasted over the canvas every overlay_every steps (overlay_* in "
                                      "settings)"),
        spot_file: Path | None = Input(
            default=None, description="Mask for spot_prompts (its light part) and spot_prompts_off (its "
                                      "dark part), given in settings; unset: a centred disc"),
        style_file: Path | None = Input(
            default=None, description="Style image for custom_loss 'style' (styleloss_* in settings; needs "
                                      "VGG16's weights on the server)"),
        edge_input_image: Path | None = Input(
            default=None, description="Image the edge loss pulls the canvas's edges towards (custom_loss "
                                      "'edge')"),
        edge_mask_image: Path | None = Input(
            default=None, description="Mask replacing the edge loss's bands: its dark part is pulled"),
        make_video: bool | None = Input(**{**input_field("make_video", nullable=True), "description":
                                           "Also return an mp4 of the image forming (a frame every step) as "
                                           "the last output (gif: true in settings adds a GIF before it)"}),
        settings: str = Input(default="", description="Any other pixray settings as 'name: value' lines "
                                                      "(YAML), e.g. 'pixel_size: [64, 36]'"),
    ) -> Iterator[Path]:
        """Stream the image as it forms: a PNG every ``display_every`` steps, then the final one
        (just before it, for drawers that draw vector pictures, its SVG); with ``make_video`` the
        mp4 of every step comes last."""
        single = {"overlay_image": overlay_image, "spot_file": spot_file, "style_file": style_file,
                  "edge_input_image": edge_input_image, "edge_mask_image": edge_mask_image}
        files = {"image_prompts": image_prompts or [], "target_images": target_images or [],
                 "image_labels": image_labels or [],
                 **{name: [path] if path else [] for name, path in single.items()}}
        request = Request(prompts, drawer, quality, aspect, iterations, seed, display_every,
                          init_image, settings, make_video, files)
        for frame in self.service.frames(request, current_scope().record_metric):
            yield Path(frame)
