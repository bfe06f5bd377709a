"""Vector tables: one direction per CLIP model, read from JSON (Pixray's format) or computed.

A table maps a CLIP model's name to a list of one embedding (``{"ViT-B/32": [[...512 numbers]]}``).
``python -m pixray.vector_tables --away FOLDER_A --towards FOLDER_B --clip_models ViT-B/32 --out
my.json`` computes one as the mean embedding of B's images less the mean of A's, as Pixray's
``vectorize.py --avg_diff`` does; ``vector_prompts: my.json`` then pulls towards B and away from A.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import torch

from .console import OneLineParser
from .options import SettingsError

#: Tables shipped inside the package, by the name a ``vector_prompts`` entry gives.
SHIPPED = ("textoff",)
#: Largest table file read (Pixray's textoff.json, for 15 models, is 190 KB).
MAX_TABLE_BYTES = 4 << 20


def parse_table(text: str, origin: str) -> dict[str, torch.Tensor]:
    """Model name -> direction (D,) from a table's JSON text; malformed tables are a SettingsError."""
    try:
        data = json.loads(text)
        table = {str(name): torch.tensor(value, dtype=torch.float32).reshape(-1)
                 for name, value in data.items()}
    except (ValueError, TypeError, AttributeError, RuntimeError) as exc:
        raise SettingsError(f"setting 'vector_prompts': {origin} is not a vector table (JSON mapping CLIP "
                            "model names to a list of one embedding)") from exc
    if any(not v.numel() or not torch.isfinite(v).all() for v in table.values()):
        raise SettingsError(f"setting 'vector_prompts': {origin} holds an empty or non-finite vector")
    return table


@functools.cache  # read once per process: every run of a server asks for textoff
def shipped_table(name: str) -> dict[str, torch.Tensor]:
    """A table shipped with pixray (see :data:`SHIPPED`); callers must not change its tensors."""
    text = resources.files(__package__).joinpath("prompt_sources", "vectors", f"{name}.json").read_text()
    return parse_table(text, f"the shipped table {name!r}")


@torch.no_grad()
def mean_difference(perceptor: torch.nn.Module, away: list[torch.Tensor],
                    towards: list[torch.Tensor]) -> torch.Tensor:
    """Mean embedding of ``towards`` less that of ``away`` (images (1,3,S,S) at the perceptor's size)."""
    def mean(images: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([perceptor.encode_image(image) for image in images]).mean(0)

    return mean(towards) - mean(away)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m pixray.vector_tables``: write a table of mean embedding differences."""
    from .atomic_files import write_atomically
    from .errors import USER_ERRORS
    from .init_images import ImageReader
    from .model_cache import ModelCache
    from .prompt_sources.target_images import centre_crop
    from .settings import build_settings

    parser = OneLineParser(prog="python -m pixray.vector_tables",
                           description=__doc__.split("\n")[0])
    parser.add_argument("--away", required=True, type=Path, help="folder of images to point away from")
    parser.add_argument("--towards", required=True, type=Path, help="folder of images to point towards")
    parser.add_argument("--clip_models", required=True, help="comma-separated CLIP model names")
    parser.add_argument("--out", required=True, type=Path,
                        help="JSON file to write (an existing file only with --overwrite)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--weights_dir", default=None)
    parser.add_argument("--device", default="auto", help="auto (default: cuda, then mps, then cpu), cpu, "
                                                         "cuda or mps, as pixray's setting")
    parser.add_argument("--cuda_device", default="cuda:0", help="cuda or cuda:N, as pixray's setting")
    args = parser.parse_args(argv)
    reader = ImageReader()
    try:
        if not args.out.parent.is_dir():  # before any model loads
            raise SettingsError(f"--out: {str(args.out.parent)!r} is not a folder")
        if args.out.exists() and not args.overwrite:
            raise SettingsError(f"--out: {str(args.out)!r} exists; name another file or add --overwrite")
        # The settings tree's own checks and messages for the device and the weights directory.
        models = ModelCache.for_settings(build_settings(
            {"device": args.device, "cuda_device": args.cuda_device, "weights_dir": args.weights_dir}))
        folders = {}
        for side in ("away", "towards"):
            folder = getattr(args, side)
            if not folder.is_dir():
                raise SettingsError(f"--{side}: {str(folder)!r} is not a folder")
            files = sorted(p for p in folder.iterdir()
                           if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp"))
            if not files:
                raise SettingsError(f"--{side}: no images (.png, .jpg, .webp) in {folder}")
            folders[side] = files
        table = {}
        for name in [n.strip() for n in args.clip_models.split(",") if n.strip()]:
            perceptor = models.perceptors([name])[0]
            size = perceptor.input_resolution
            views = {side: [centre_crop(reader.read(str(f), *reader.size(str(f), side), side), size)
                            .to(models.device) for f in files] for side, files in folders.items()}
            table[name] = [mean_difference(perceptor, views["away"], views["towards"]).tolist()]
        write_atomically(args.out, lambda f: f.write(json.dumps(table).encode("utf-8")))
    except USER_ERRORS as exc:
        print(f"pixray.vector_tables: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # a folder that cannot be listed, an --out that cannot be written
        print(f"pixray.vector_tables: error: cannot write {str(args.out)!r} or read the images: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
