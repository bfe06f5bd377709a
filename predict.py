"""Cog entry point (cog.yaml ``run: predict.py:Predictor``): a thin mapping onto pixray.serving.

Input descriptions, defaults, bounds and choices come from pixray's settings tree; every other
setting is reachable through the ``settings`` input (``name: value`` lines, as in Pixray).
"""

from __future__ import annotations

from collections.abc import Iterator

from cog import BaseRunner, Input, Path, current_scope, streaming

from pixray.serving import Request, Service, input_field


class Predictor(BaseRunner):
    def setup(self) -> None:
        """Load the CLIP and drawer models once (fetching missing weight files when online)."""
        self.service = Service.from_environment()

    @streaming
    def run(
        self,
        prompts: str = Input(**{**input_field("prompts"), "default": "a red circle on a blue background"}),
        drawer: str = Input(**input_field("drawer")),
        quality: str = Input(**input_field("quality")),
        aspect: str = Input(**input_field("aspect")),
        iterations: int | None = Input(**input_field("iterations")),
        seed: int | None = Input(**input_field("seed")),
        display_every: int = Input(**{**input_field("display_every"), "description":
                                      "Stream an image every N steps (0: only the final one)"}),
        init_image: Path | None = Input(default=None, description="Image the drawer starts from"),
        settings: str = Input(default="", description="Any other pixray settings as 'name: value' lines "
                                                      "(YAML), e.g. 'pixel_size: [64, 36]'"),
    ) -> Iterator[Path]:
        """Stream the image as it forms: a PNG every ``display_every`` steps, the final one last."""
        request = Request(prompts, drawer, quality, aspect, iterations, seed, display_every,
                          init_image, settings)
        for frame in self.service.frames(request, current_scope().record_metric):
            yield Path(frame)
