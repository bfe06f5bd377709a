"""``python -m pixray.weights list`` / ``download NAME...``: what is present, and fetching what is not.

NAME is a CLIP model (ViT-B/32), a model a drawer or loss declares (the VQGAN imagenet_f16_16384, the
style loss's vgg16, the aesthetic loss's ava_vit_b_16_linear) or a file name (RN50.pt);
with no NAME, download fetches what a run with default settings loads (the Cog predictor's preload).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..console import OneLineParser, download_bar, stdout_may_close
from ..options import SettingsError
from . import MANIFEST, CheckpointError, weights_dir
from .download import DownloadError, download


def _parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m pixray.weights", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="weights directory (default: $PIXRAY_WEIGHTS_DIR, else ./weights where "
                                      "it exists, else ~/.cache/pixray/weights)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", parents=[common], help="every manifest file and whether it is present")
    fetch = commands.add_parser("download", parents=[common], help="fetch files: resumable, verified, atomic")
    fetch.add_argument("names", nargs="*",
                       help="CLIP models, models the parts declare (VQGAN models, vgg16) or file names")
    return parser


def _list(directory: Path) -> int:
    print(f"weights directory: {directory.resolve()}")
    for entry in MANIFEST.values():
        path = directory / entry.filename
        state = f"present, {path.stat().st_size / 1e6:.0f} MB" if path.is_file() else "missing"
        print(f"  {entry.filename:40} {state}")
    return 0


def _download(names: list[str], directory: Path) -> int:
    from ..model_cache import models_for, weight_files

    for name in names:
        if not weight_files(name):  # the shapes-world CLIPs: their weights are inside the package
            print(f"{name}: ships with pixray; nothing to download")
    files = list(dict.fromkeys(f for name in (names or models_for()) for f in weight_files(name)))
    if files:  # a directory that cannot be made is said before any progress bar
        directory.mkdir(parents=True, exist_ok=True)
    for filename in files:
        with download_bar(filename) as progress:
            path = download(MANIFEST.lookup(filename), directory, progress)
        print(f"{path} ok")
    return 0


def main(argv: list[str] | None = None) -> int:
    return stdout_may_close(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    directory = weights_dir(args.dir)
    try:
        return _list(directory) if args.command == "list" else _download(args.names, directory)
    except BrokenPipeError:  # the reader of the listing went away: not the directory's fault
        raise
    except (SettingsError, DownloadError, CheckpointError) as exc:
        print(f"pixray.weights: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a weights directory that cannot be made or written
        print(f"pixray.weights: error: cannot write into {str(directory)!r}: {exc.strerror or exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
