"""The ``pixray`` command: flags and YAML files -> settings -> run -> PNG files, with a progress bar."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .errors import RunError
from .options import SettingsError
from .pixray_settings import NOT_YET
from .runtime import keep_freed_memory
from .settings import Settings, all_specs, build_settings, read_settings_file, section_kind, sections_holding
from .weights import CheckpointError, MissingWeightsError

if TYPE_CHECKING:
    from .engine import Run, Step
    from .output import OutputWriter


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the message already names the problem.
        self.exit(2, f"pixray: error: {message} (see pixray --help)\n")


def _group_title(sections: tuple[str, ...]) -> str:
    """The help group of settings held by ``sections``: "pixel, fast_pixel drawers", "palette loss,
    lookup filter"."""
    kinds = [section_kind(section) for section in sections]
    if len(set(kinds)) > 1:
        return ", ".join(f"{section} {kind}" for section, kind in zip(sections, kinds, strict=True))
    plural = {"loss": "losses"}.get(kinds[0], f"{kinds[0]}s")
    return f"{', '.join(sections)} {kinds[0] if len(sections) == 1 else plural}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, generated from the settings tree (every setting is a flag, with
    Pixray's short forms; list settings take several words or one comma-separated word)."""
    parser = _Parser(prog="pixray", description="CLIP-guided image generation.",
                     allow_abbrev=False)
    parser.add_argument("--config", "--config_file", action="append", default=[], metavar="FILE",
                        help="YAML file of 'name: value' settings (repeatable; later files and flags win)")
    parser.add_argument("--quiet", action="store_true", help="No progress bar")
    groups: dict[str, Any] = {}
    holders = sections_holding()
    for spec in all_specs().values():
        sections = holders.get(spec.name, (spec.section,))
        title = "settings" if spec.section == "core" else _group_title(sections)
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        group.add_argument(f"--{spec.name}", *spec.flags, dest=spec.name, default=argparse.SUPPRESS,
                           metavar="VALUE", nargs="+" if spec.is_list else None,
                           help=f"{spec.help}; {spec.allowed} (default: {spec.default})".replace("%", "%%"))
    for name, flags in NOT_YET.items():  # answered by build_settings with "not supported yet"
        parser.add_argument(*dict.fromkeys((f"--{name}", *flags)), dest=name, nargs="*",
                            default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _values(args: dict[str, Any]) -> dict[str, Any]:
    """Parsed flags as settings values: the words of a list flag as a list, or the one word as given
    (so "384 216", "a,b" and 384 216 all work)."""
    return {k: (v[0] if len(v) == 1 else v) if isinstance(v, list) else v for k, v in args.items()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pixray`` console script; returns the exit code."""
    args = vars(build_parser().parse_args(argv))
    configs, quiet = args.pop("config"), args.pop("quiet")
    logging.basicConfig(level=logging.WARNING, format="pixray: %(message)s")
    keep_freed_memory()
    try:
        with _terminate_as_interrupt():
            settings = build_settings(*[read_settings_file(c) for c in configs], _values(args))
            # Imported only now: settings errors are reported without loading the CLIP stack.
            from .engine import Run
            from .output import OutputWriter

            if settings.animation_dir:
                path = _animate(settings, quiet)
            else:
                writer = OutputWriter(settings)  # before Run: a bad outdir is reported before models load
                run = Run(settings)
                _execute(run, writer, quiet)
                path = writer.path
    except (SettingsError, MissingWeightsError, CheckpointError, RunError) as exc:
        print(f"pixray: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pixray: interrupted", file=sys.stderr)
        return 130
    print(path)
    return 0


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a container stop, ``kill``) ends the run like Ctrl-C: between writes, cleanly.

    Images are written atomically, so an interrupted run never leaves a half-written PNG.
    """
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a library): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _execute(run: Run, writer: OutputWriter, quiet: bool) -> None:
    from tqdm import tqdm

    every = run.plan.display_every
    bar = tqdm(total=run.plan.iterations, disable=quiet, unit="it", dynamic_ncols=True, file=sys.stderr)

    def progress(step: Step) -> None:
        if step.is_final:
            return
        if every and step.index % every == 0:
            bar.set_postfix(loss=f"{step.loss:.4f}", refresh=False)
        bar.update(1)

    with bar:
        writer.save_run(run, progress)


def _animate(settings: Settings, quiet: bool) -> Path:
    """Run an animation (``animation_dir``) with a progress bar; the path of its GIF."""
    from tqdm import tqdm

    from .animation import Animation, AnimationWriter

    writer = AnimationWriter(settings)  # before the runs: a bad directory is reported before models load
    animation = Animation(settings)
    bar = tqdm(total=animation.runs[0].plan.iterations, disable=quiet, unit="it", dynamic_ncols=True,
               file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    with bar:
        return writer.save(animation, progress)


if __name__ == "__main__":
    sys.exit(main())
