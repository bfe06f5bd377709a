"""The ``pixray`` command: flags and YAML files -> settings -> run -> PNG files, with a progress bar."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import itertools
import logging
import os
import re
import signal
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from .console import OneLineParser, stdout_may_close
from .errors import USER_ERRORS
from .options import SettingsError, is_bool_word
from .pixray_settings import renamed_setting_hint
from .runtime import fit_threads_to_cpus, keep_freed_memory
from .settings import (
    Settings,
    all_specs,
    build_settings,
    group_title,
    read_settings_file,
    read_settings_stream,
    sections_holding,
)
from .version import installed_version

if TYPE_CHECKING:
    from .engine import Run
    from .model_cache import ModelCache
    from .output import OutputWriter

_T = TypeVar("_T")


class _Parser(OneLineParser):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # argparse takes only -1 and -0.5 for values: -1e-3, '-1,1' (a list) and -5% read as unknown flags.
        # No flag here starts with a digit, so every word that does is a value.
        self._negative_number_matcher = re.compile(r"^-\.?\d")
        #: The flags of true/false settings: given without a value (``--make_video``), they mean true.
        self.true_when_bare: set[str] = set()
        self._words: list[str] = []

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self._words = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self._bare_flags_given_true(self._words), namespace)

    def _bare_flags_given_true(self, words: list[str]) -> list[str]:
        """``words`` with ``true`` after each true/false flag (or a unique prefix of one) given alone:
        at the end, before another flag, or, where the command takes a positional argument, before any
        word that is not a true/false word (``pixray batch --make_video jobs.yaml``). Elsewhere the next
        word stays the flag's value, so a misspelt one (``--make_video ys``) is refused naming the setting."""
        longs = self._long_flags()
        takes_positional = any(not action.option_strings for action in self._actions)
        given: list[str] = []
        for i, word in enumerate(words):
            given.append(word)
            if word == "--":
                return given + words[i + 1:]
            prefixed = [s for s in longs if s.startswith(word)] if word.startswith("--") else []
            flag = word if word in self.true_when_bare or len(prefixed) != 1 else prefixed[0]
            after = words[i + 1] if i + 1 < len(words) else ""
            is_flag = after.startswith("-") and not self._negative_number_matcher.match(after)
            if flag in self.true_when_bare and (
                    i + 1 == len(words) or is_flag or (takes_positional and not is_bool_word(after))):
                given.append("true")
        return given

    def error(self, message: str) -> NoReturn:
        # One line, no usage dump: the message already names the problem.
        flag = re.match(r"argument ([^:]+):", message)
        if flag and ("expected one argument" in message or "expected at least one argument" in message):
            spellings = flag[1].split("/")
            hint = (f"a value that starts with '-' is given as {spellings[0]}=VALUE"
                    if self._dash_value_after(spellings) else "its value follows it")
            message += f" ({hint})"
        elif message.startswith("unrecognized arguments: "):
            first = message.removeprefix("unrecognized arguments: ").split(" ")[0]
            message += self._equals_hint(first) or self._flag_hint(first)
        super().error(message)

    def _equals_hint(self, unrecognized: str) -> str:
        """Where the word ``unrecognized`` follows a ``--flag=value`` (``--size=64 48``,
        ``--prompts=a red circle``): how to give the value meant."""
        for i, word in enumerate(self._words[:-1]):
            name, _, value = word.partition("=")
            action = self._option_string_actions.get(name) if word.startswith("--") and value else None
            if action is not None and self._words[i + 1] == unrecognized:
                more = " ".join(itertools.takewhile(lambda w: not w.startswith("-"), self._words[i + 1:]))
                several = (f"give several as {name} {value} {more}" if action.nargs == "+"
                           else f"quote a value of several words: {name}='{value} {more}'")
                return f" (a value given as {word} ends there; {several})"
        return ""

    def _flag_hint(self, unrecognized: str) -> str:
        """For an unknown ``--flag``: the setting it is closest to, or what replaced a flag of Pixray's
        first versions."""
        if not unrecognized.startswith("--"):
            return ""
        name = unrecognized.partition("=")[0]
        renamed = renamed_setting_hint(name[2:], command_line=True)
        if renamed:
            return renamed
        close = difflib.get_close_matches(name, self._long_flags(), n=1) if len(name) <= 100 else []
        return f" (did you mean {close[0]}?)" if close else ""

    def _long_flags(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings if s.startswith("--")]

    def _dash_value_after(self, spellings: list[str]) -> bool:
        """Whether, where a flag spelt one of ``spellings`` (or a prefix of one) was given, the word
        after it starts with '-' and is no flag: a value argparse took for an unknown flag."""
        options = [s for action in self._actions for s in action.option_strings]
        for word, after in zip(self._words, self._words[1:], strict=False):
            names_it = any(s == word or (word.startswith("--") and s.startswith(word)) for s in spellings)
            if len(word) > 1 and names_it:
                return after.startswith("-") and not any(s.startswith(after) for s in options)
        return False


def build_parser(prog: str = "pixray",
                 description: str = "CLIP-guided image generation (`pixray batch JOBS` renders many: "
                                    "see pixray batch --help; `pixray ui` opens a web page to make "
                                    "images on: see pixray ui --help).",
                 options: str = "[--version]") -> argparse.ArgumentParser:
    """The argument parser, generated from the settings tree (every setting is a flag, with
    Pixray's short forms; list settings take several words or one comma-separated word). ``options``:
    the usage line's words for the command's own flags and arguments."""
    # argparse's own usage line lists every setting's flag, screens of it before the help begins; the
    # settings' flags are listed under "settings" and their sections below it.
    words = f"{prog} [-h] {options} [--config FILE] [--quiet] [--SETTING VALUE ...]"
    unbroken = re.sub(r"\[[^]]*\]", lambda m: m[0].replace(" ", "\xa0"), words)  # a bracket on one line
    usage = textwrap.fill(unbroken, 79, initial_indent="usage: ", break_on_hyphens=False,
                          subsequent_indent=" " * len(f"usage: {prog} "))
    usage = usage.removeprefix("usage: ").replace("\xa0", " ")
    # Any unique prefix of a flag, as Pixray's argparse takes: its README's own example is --prompt=sunrise.
    parser = _Parser(prog=prog, description=description, usage=usage, allow_abbrev=True,
                     epilog="environment: PIXRAY_WEIGHTS_DIR, the weights directory (see --weights_dir); "
                            "PIXRAY_DOWNLOAD=0, never fetch the weight files a run misses (they are named "
                            "with the command that fetches them)")
    parser.add_argument("--config", "--config_file", action="append", default=[], metavar="FILE",
                        help="YAML file of 'name: value' settings, or a PNG pixray made ('-': standard "
                             "input; repeatable; later files and flags win)")
    parser.add_argument("--quiet", action="store_true", help="No progress bar")
    parser.add_argument("--version", action="version", version=f"pixray {installed_version()}")
    groups: dict[str, Any] = {}
    holders = sections_holding()
    for spec in all_specs().values():
        sections = holders.get(spec.name, (spec.section,))
        title = "settings" if spec.section == "core" else group_title(sections)
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        flags = (f"--{spec.name}", *spec.flags)
        bare = spec.value_type is bool and not spec.is_list
        if bare:
            parser.true_when_bare.update(flags)
        group.add_argument(*flags, dest=spec.name, default=argparse.SUPPRESS,
                           metavar="VALUE", nargs="+" if spec.is_list else None,
                           help=(f"{spec.help}; {spec.allowed}{'; alone: true' if bare else ''} "
                                 f"(default: {typed(spec.default)})").replace("%", "%%"))
    return parser


def typed(value: Any) -> str:
    """A setting's value as it is typed on the command line: none, true or false, a list's entries
    comma-separated, '' for an empty text or list."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(typed(item) for item in value) or "''"
    return str(value) or "''"


def _values(args: dict[str, Any]) -> dict[str, Any]:
    """Parsed flags as settings values: the words of a list flag as a list, or the one word as given
    (so "384 216", "a,b" and 384 216 all work)."""
    return {k: (v[0] if len(v) == 1 else v) if isinstance(v, list) else v for k, v in args.items()}


def _read_config(name: str) -> dict[str, Any]:
    """The settings of a ``--config`` file; ``-`` reads them from standard input."""
    if name == "-":
        return read_settings_stream(sys.stdin.buffer, "standard input")
    return read_settings_file(name)


def _given_settings(configs: Sequence[str], args: dict[str, Any]) -> dict[str, Any]:
    """The flat settings of ``--config`` files (in order) and then the settings flags."""
    given: dict[str, Any] = {}
    for config in configs:
        given.update(_read_config(config))
    given.update(_values(args))
    return given


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pixray`` console script; returns the exit code."""
    return stdout_may_close(lambda: _main(list(sys.argv[1:] if argv is None else argv)))


def _main(argv: list[str]) -> int:
    if argv[:1] == ["batch"]:
        return batch_main(argv[1:])
    if argv[:1] == ["ui"]:
        return ui_main(argv[1:])
    args = vars(build_parser().parse_args(argv))
    configs, quiet = args.pop("config"), args.pop("quiet")
    _start_program()

    def command() -> int:
        settings = build_settings(*[_read_config(c) for c in configs], _values(args))
        # Imported only now: settings errors are reported without loading the CLIP stack.
        from .engine import Run
        from .output import OutputWriter

        if settings.animation_dir:
            path = _animate(settings, quiet)
        else:
            from .model_cache import ModelCache

            writer = OutputWriter(settings)  # before Run: a bad outdir is reported before models load
            models = ModelCache.for_settings(settings)  # what a first attempt loaded stays for the next
            run = _fetching_weights(lambda: Run(settings, models=models), models, quiet)
            _execute(run, writer, quiet)
            path = writer.path
        print(path)
        return 0

    return _guarded(command, "interrupted")


def _fetching_weights(make: Callable[[], _T], models: ModelCache, quiet: bool) -> _T:
    """``make()`` (a run, an animation, loading through ``models``), after fetching the weight files it
    misses (see :func:`~pixray.model_cache.fetching_missing`), said on the console."""
    from .console import download_bar
    from .model_cache import fetching_missing

    return fetching_missing(make, models.weights_dir, None if quiet else download_bar)


def _fetch_for_jobs(jobs: Sequence[Settings], quiet: bool) -> None:
    """Fetch the weight files the jobs about to run (their settings) would miss before the workers start,
    each once and shown here (unless ``$PIXRAY_DOWNLOAD`` is ``0``). A job needing a file that cannot be
    fetched is left to fail as a job, with its own one-line error."""
    from .console import download_bar
    from .errors import CheckpointError, MissingWeightsError
    from .model_cache import downloads_allowed, fetch_files, missing_weight_files, models_for
    from .weights import weights_dir

    if not downloads_allowed():
        return
    wanted: dict[Path, list[str]] = {}
    for settings in jobs:
        directory = weights_dir(settings.weights_dir)
        for name in models_for(settings):
            with contextlib.suppress(SettingsError):  # not a model name: the job says so
                for files in missing_weight_files([name], directory).values():
                    wanted.setdefault(directory, []).extend(files)
    for directory, files in wanted.items():
        try:
            fetch_files(list(dict.fromkeys(files)), directory, None if quiet else download_bar)
        except (MissingWeightsError, CheckpointError) as exc:  # a host gone, a file not the published one
            logging.getLogger(__name__).warning("%s", exc)


def _start_program() -> None:
    """What each command sets for its whole process once its flags are read: one-line log messages,
    glibc keeping freed memory (:func:`keep_freed_memory`), torch's threads fitted to the CPUs usable."""
    logging.basicConfig(level=logging.WARNING, format="pixray: %(message)s")
    keep_freed_memory()
    fit_threads_to_cpus()


def _guarded(command: Callable[[], int], interrupted: str) -> int:
    """Run ``command`` (it returns the exit code) with SIGTERM taken as Ctrl-C: a user's mistake is
    one line on stderr and exit code 2, an interruption the line ``interrupted`` and 130."""
    try:
        with _terminate_as_interrupt():
            return command()
    except USER_ERRORS as exc:
        print(f"pixray: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixray: {interrupted}", file=sys.stderr)
        return 130


def batch_main(argv: Sequence[str]) -> int:
    """``pixray batch JOBS``: every job of a jobs file (see :mod:`pixray.batch`); 0 when all are
    done, 1 when some failed (each said on stderr and in the manifest), 2 for an unusable jobs file
    or options."""
    parser = build_parser("pixray batch", "Render every job of a jobs file (YAML or JSONL: a list of jobs, "
                                          "or 'settings', 'jobs' and 'sweep'), each into its own directory "
                                          "under --outdir, with batch.jsonl recording each job and "
                                          "batch_grid.png showing them; run it again to resume. Settings "
                                          "flags and --config files give every job's shared settings.",
                          "[--workers N] [--ray ADDRESS] [--job-progress] JOBS")
    parser.add_argument("jobs", metavar="JOBS", help="the jobs file (.yaml, .json or .jsonl)")
    parser.add_argument("--workers", type=int, default=1,
                        help="local worker processes, each keeping its models loaded (default 1); with "
                             "--ray, the actors to start where the cluster has no GPUs")
    parser.add_argument("--ray", metavar="ADDRESS", default=None,
                        help="run the workers as Ray actors, one per GPU, on the cluster at ADDRESS "
                             "('auto': the one this machine belongs to; 'local': a new one here); "
                             "outdir must be a path every node sees")
    parser.add_argument("--job-progress", action="store_true",
                        help="show each job's steps in the progress bar")
    args = vars(parser.parse_args(argv))
    configs, quiet, jobs_file = args.pop("config"), args.pop("quiet"), args.pop("jobs")
    workers, ray_address, job_progress = args.pop("workers"), args.pop("ray"), args.pop("job_progress")
    batch_dir = args.pop("outdir", None) or f"outputs/batch_{Path(jobs_file).stem}"
    _start_program()
    from .batch import read_jobs, run_batch
    from .console import progress_bar
    from .output import claim_outdir

    def command() -> int:
        jobs = read_jobs(jobs_file, _given_settings(configs, args))
        # %DATE%, %SEQ% (a new batch each time, never one started alongside: no resuming)
        directory, _ = claim_outdir(batch_dir)
        with progress_bar(len(jobs), "job", quiet) as bar:
            def on_record(record: dict[str, Any]) -> None:
                if record.get("status") == "failed":  # said as it happens, not only in the manifest
                    bar.write(f"pixray: job {record['job']} failed: {record['error']}", file=sys.stderr)
                if "status" in record:
                    bar.update(1)
                elif job_progress:
                    step = f"{record['step']}/{record['of']}"
                    bar.set_postfix_str(f"job {record['progress'][:8]}: step {step}")

            summary = run_batch(jobs, directory, workers, ray_address, on_record, job_progress,
                                lambda todo: _fetch_for_jobs(todo, quiet))
        print(f"pixray: {summary.done} done, {summary.skipped} already done, {summary.failed} failed "
              f"(see {directory / 'batch.jsonl'})", file=sys.stderr)
        print(summary.grid or directory)
        return 1 if summary.failed else 0

    return _guarded(command, "interrupted (finished jobs are kept; run the same command to resume)")


def _port(text: str) -> int:
    """A TCP port number, 1-65535 (argparse's type for ``--port``)."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


def ui_main(argv: Sequence[str]) -> int:
    """``pixray ui``: the local web page (see :mod:`pixray.ui`) until interrupted; 2 for bad
    options or settings, or without the ``ui`` extra installed."""
    parser = build_parser("pixray ui", "A web page on this machine to make images and watch them form "
                                       "(Gradio). Settings flags and --config files give the settings under "
                                       "every form; outdir says where runs go (the gallery shows them).",
                          "[--host HOST] [--port PORT] [--share] [--auth USER:PASSWORD] [--open] [--demo]")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve on (default 127.0.0.1: this machine only; 0.0.0.0: every "
                             "network it is on)")
    parser.add_argument("--port", type=_port, default=7860, help="port to serve on, 1-65535 (default 7860)")
    parser.add_argument("--share", action="store_true",
                        help="also a temporary public link through Gradio's share service (needs the "
                             "internet)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", default=os.environ.get("PIXRAY_UI_AUTH"),
                        help="ask for this user name and password before showing the page (default: "
                             "$PIXRAY_UI_AUTH, which keeps the password out of the process list; unset: no "
                             "login)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--demo", action="store_true",
                        help="start with the shapes-world guides' settings in the form (works offline)")
    args = vars(parser.parse_args(argv))
    configs = args.pop("config")
    args.pop("quiet")
    host, port, share, open_browser, demo = (args.pop(k) for k in ("host", "port", "share", "open", "demo"))
    auth = args.pop("auth")
    if auth is not None and ":" not in auth:
        parser.error("argument --auth: expected USER:PASSWORD")
    login = tuple(auth.split(":", 1)) if auth else None
    _start_program()

    def command() -> int:
        base = _given_settings(configs, args)
        try:
            from .ui.app import serve
        except ModuleNotFoundError as exc:
            if exc.name is None or not exc.name.startswith("gradio"):
                raise
            raise SettingsError("pixray ui needs the ui extra: pip install 'pixray[ui]' (make install "
                                "installs it)") from None
        from .ui.page import Page

        serve(Page(base), host, port, lambda line: print(line, file=sys.stderr, flush=True), share, demo,
              open_browser, login)
        return 0

    return _guarded(command, "stopped")


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
    from .console import run_bar

    with run_bar(run, quiet) as progress:
        writer.save_run(run, progress)


def _animate(settings: Settings, quiet: bool) -> Path:
    """Run an animation (``animation_dir``) with a progress bar; the path of its GIF."""
    from .animation import Animation, AnimationWriter
    from .console import animation_bar
    from .model_cache import ModelCache

    writer = AnimationWriter(settings)  # before the runs: a bad directory is reported before models load
    models = ModelCache.for_settings(settings)
    animation = _fetching_weights(lambda: Animation(settings, models=models), models, quiet)
    with animation_bar(animation.runs[0].plan.iterations, quiet) as progress:
        return writer.save(animation, progress)


if __name__ == "__main__":
    sys.exit(main())
