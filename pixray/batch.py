"""Many generations from one jobs file: job lists and sweeps, workers that keep their models loaded,
a resumable manifest and a contact sheet.

A jobs file is YAML (or JSON) or JSONL. YAML: a list of jobs, or a mapping with any of ``settings``
(shared by every job), ``jobs`` (a list of settings mappings, each over the shared ones) and
``sweep`` (setting -> list of values: every combination, applied to each job). JSONL: one job
mapping per line. Each job writes into its own directory under the batch directory, and
``batch.jsonl`` there records every job's settings, seed, status, outputs, time and error, one JSON
line per event (the last line of a job wins). Running the same batch again skips the jobs done with
the same settings (a job's key is the hash of its settings) and retries the others.

Workers (:class:`BatchWorker`) run jobs one after another in their own process, keeping one
:class:`~pixray.model_cache.ModelCache`, so CLIP and drawer models load once per worker: local
processes (``workers``), or Ray actors on a cluster (``ray_address``; one per GPU there, else
``workers``), writing into a directory every machine sees.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import multiprocessing
import os
import queue
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from PIL import Image, ImageDraw, ImageFont

from .errors import USER_ERRORS
from .options import SettingsError
from .settings import Settings, build_settings

if TYPE_CHECKING:
    from .engine import Step
    from .model_cache import ModelCache

log = logging.getLogger(__name__)

MANIFEST = "batch.jsonl"
GRID = "batch_grid.png"
#: Settings the batch owns: each job's directory is its own.
BATCH_OWNED = ("outdir", "overwrite", "animation_dir")
RAY_HINT = "pip install 'pixray[ray]' (or pip install ray)"
Record = dict[str, Any]  # one manifest line (JSON-able: it also travels between processes)


@dataclass(frozen=True)
class Job:
    """One generation of a batch: ``settings`` (the shared ones with the job's over them, as given),
    ``key`` (the hash of ``settings``: the same settings, the same job), its directory (relative to
    the batch directory) and a label for the contact sheet."""

    index: int
    settings: Mapping[str, Any]
    key: str

    @property
    def directory(self) -> str:
        return f"job_{self.index:03d}_{self.key[:8]}"

    @property
    def label(self) -> str:
        given = self.settings.get("prompts", "")
        first = given[0] if isinstance(given, (list, tuple)) and given else given  # a list gives the entries
        prompts = str(first).split("|")[0].strip()
        seed = self.settings.get("seed")
        short = f"{prompts[:40]}..." if len(prompts) > 40 else prompts
        return short + (f" (seed {seed})" if seed is not None else "")

    def record(self, **fields: Any) -> Record:
        """A manifest record of this job with ``fields``."""
        return {"key": self.key, "job": self.index, "directory": self.directory,
                "settings": dict(self.settings), **fields}


def job_key(settings: Mapping[str, Any]) -> str:
    """A stable hash of a job's settings (sha256 of their canonical JSON)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise SettingsError(f"jobs file: {where} must be a mapping of setting names to values, "
                            f"not {type(value).__name__}")
    return dict(value)


def read_jobs(path: str | Path, shared: Mapping[str, Any] | None = None) -> list[Job]:
    """The jobs of the jobs file at ``path`` (see the module's docstring), over ``shared`` settings
    (e.g. from the command line; the file's own ``settings`` go over those)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"jobs file {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    try:
        if path.suffix == ".jsonl":
            document: Any = []
            for number, line in enumerate(text.splitlines(), 1):
                try:
                    document.extend([json.loads(line)] if line.strip() else [])
                except json.JSONDecodeError as exc:  # its position counts within the line alone
                    raise ValueError(f"line {number}, column {exc.colno}: {exc.msg}") from None
        else:
            document = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SettingsError(f"jobs file {str(path)!r} is not valid "
                            f"{'JSONL' if path.suffix == '.jsonl' else 'YAML'}: "
                            f"{' '.join(str(exc).split())[:200]}") from None
    base = dict(shared or {})
    if isinstance(document, list):
        jobs, sweep = document, {}
    elif isinstance(document, Mapping):
        unknown = set(document) - {"settings", "jobs", "sweep"}
        if unknown or not document:
            raise SettingsError(f"jobs file {str(path)!r}: a mapping holds 'settings', 'jobs' and/or 'sweep' "
                                f"(found {', '.join(sorted(map(str, unknown))) or 'nothing'})")
        base.update(_mapping(document.get("settings") or {}, "'settings'"))
        jobs = document.get("jobs") or [{}]
        sweep = _mapping(document.get("sweep") or {}, "'sweep'")
    else:
        raise SettingsError(f"jobs file {str(path)!r} holds no jobs (a list of jobs, or a mapping with "
                            "'settings', 'jobs' and/or 'sweep')")
    if not isinstance(jobs, list):
        raise SettingsError("jobs file: 'jobs' must be a list of settings mappings")
    for name, values in sweep.items():
        if not isinstance(values, list) or not values:
            raise SettingsError(f"jobs file: sweep {name!r} must be a non-empty list of values")
    combinations = [dict(zip(sweep, values, strict=True)) for values in itertools.product(*sweep.values())]
    result = []
    for i, job in enumerate(jobs):
        overrides = _mapping(job, f"job {i + 1}")
        for combination in combinations:
            settings = {**base, **overrides, **combination}
            if owned := [name for name in BATCH_OWNED if name in settings]:
                raise SettingsError(f"jobs file: {owned[0]!r} cannot be set in a batch: each job writes into "
                                    "its own directory under the batch's --outdir")
            result.append(Job(len(result), settings, job_key(settings)))
    return result


class Manifest:
    """``batch.jsonl``: one JSON line per job event, appended and flushed one by one, so an
    interrupted batch leaves every finished job recorded (a torn last line is ignored)."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / MANIFEST

    def latest(self) -> dict[str, Record]:
        """The last record of each job key."""
        records: dict[str, Record] = {}
        if not self.path.exists():
            return records
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interruption
            if isinstance(record, dict) and "key" in record:
                records[record["key"]] = record
        return records

    def append(self, record: Record) -> None:
        line = (json.dumps(record, default=str) + "\n").encode("utf-8")
        with self.path.open("ab+") as f:
            end = f.seek(0, os.SEEK_END)
            if end:  # a line torn by an interruption is ended first, or this record would join it
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    line = b"\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class BatchWorker:
    """Runs jobs one after another, keeping its models loaded between them (one
    :class:`ModelCache` per device and weights directory). ``threads`` and ``memory`` (bytes): this
    worker's share of the machine where several share it; None: all of it."""

    def __init__(self, name: str, device: str | None = None, threads: int | None = None,
                 memory: int | None = None) -> None:
        self.name = name
        self.device = device  # "cuda:N": the GPU of a job on CUDA (one GPU per local worker)
        self.memory = memory
        if threads:
            import torch

            torch.set_num_threads(threads)
        self._caches: dict[tuple[str, str], ModelCache] = {}

    def model_loads(self) -> int:
        """Model files this worker has read so far."""
        return sum(cache.loads for cache in self._caches.values())

    def run(self, job: Job, batch_dir: str, report: Callable[[Record], None] | None = None) -> Record:
        """Run ``job`` into its directory under ``batch_dir``; its manifest record (status ``done``
        with its outputs, or ``failed`` with the one-line error)."""
        from .engine import Run
        from .model_cache import ModelCache
        from .output import OutputWriter
        from .runtime import choose_device
        from .weights import weights_dir

        started = time.perf_counter()
        record = job.record(worker=self.name)
        directory = Path(batch_dir) / job.directory
        try:
            runtime = {"outdir": str(directory), "overwrite": True}
            if self.device:  # this worker's GPU, for a job that runs on CUDA
                runtime["cuda_device"] = self.device
            settings = build_settings(dict(job.settings), runtime)
            device = choose_device(settings.device, settings.cuda_device)
            cache_key = (str(device), str(weights_dir(settings.weights_dir).resolve()))
            if cache_key not in self._caches:
                self._caches[cache_key] = ModelCache.for_settings(settings)
            writer = OutputWriter(settings)
            run = Run(settings, models=self._caches[cache_key], memory=self.memory)
            record["seed"] = run.seed

            def progress(step: Step) -> None:
                if report is not None and not step.is_final:
                    report({"progress": job.key, "step": step.index + 1, "of": run.plan.iterations})

            writer.save_run(run, progress)
            record["outputs"] = [str(p.relative_to(batch_dir)) for p in writer.outputs()]
            record["status"] = "done"
        except (*USER_ERRORS, OSError, ValueError) as exc:
            record.update(status="failed", error=_one_line(exc))
        except Exception as exc:  # one job's failure must not end the batch
            log.exception("job %d failed", job.index)
            record.update(status="failed", error=f"{type(exc).__name__}: {_one_line(exc)}")
        record["seconds"] = round(time.perf_counter() - started, 3)
        record["model_loads"] = self.model_loads()
        return record


def _local_worker(name: str, device: str | None, threads: int, memory: int, batch_dir: str, tasks: Any,
                  results: Any, report: bool) -> None:
    """A worker process: jobs from ``tasks`` until None, records (and progress) into ``results``."""
    worker = BatchWorker(name, device, threads, memory)
    while (job := tasks.get()) is not None:
        results.put(worker.run(job, batch_dir, results.put if report else None))


def _local_devices(count: int) -> list[str | None]:
    """A GPU per worker in turn where there are GPUs; else each worker uses the jobs' device."""
    import torch

    gpus = torch.cuda.device_count()
    return [f"cuda:{i % gpus}" for i in range(count)] if gpus else [None] * count


def worker_share(workers: int) -> tuple[int, int]:
    """The CPU threads and the bytes of memory each of ``workers`` local workers may count on: each
    holds its own models and computes its own passes."""
    from .runtime import usable_cpus, usable_memory

    return max(1, usable_cpus() // workers), usable_memory() // workers


def _run_local(jobs: Sequence[Job], batch_dir: str, workers: int, report: bool) -> Iterator[Record]:
    """Records (and progress messages) as ``workers`` local processes finish jobs."""
    if workers == 1:  # in this process: no start-up, the models stay for the caller's next batch too
        worker = BatchWorker("local-0", _local_devices(1)[0])
        messages: list[Record] = []
        for job in jobs:
            record = worker.run(job, batch_dir, messages.append if report else None)
            yield from messages
            messages.clear()
            yield record
        return
    spawn = multiprocessing.get_context("spawn")  # a fork after torch has started threads can hang
    tasks, results = spawn.Queue(), spawn.Queue()
    threads, memory = worker_share(workers)
    processes = [spawn.Process(target=_local_worker, args=(f"local-{i}", device, threads, memory, batch_dir,
                                                            tasks, results, report), daemon=True)
                 for i, device in enumerate(_local_devices(workers))]
    for job in jobs:
        tasks.put(job)
    for _ in processes:
        tasks.put(None)
    for process in processes:
        process.start()
    try:
        unfinished = {job.key: job for job in jobs}
        while unfinished:
            try:
                message = results.get(timeout=1)
            except queue.Empty:
                if any(process.is_alive() for process in processes):
                    continue
                for job in unfinished.values():  # every worker is gone (killed, out of memory)
                    yield job.record(status="failed", error="its worker process ended unexpectedly")
                return
            if "status" in message:
                unfinished.pop(message["key"], None)
            yield message
        for process in processes:
            process.join()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()


class _Forward:
    """A report callable that crosses processes: puts each progress message on a Ray queue."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, message: Record) -> None:
        self.queue.put_nowait(message)


def _run_ray(jobs: Sequence[Job], batch_dir: str, address: str, workers: int,
             report: bool) -> Iterator[Record]:
    """Records (and progress messages) as Ray actors (one per GPU of the cluster, else ``workers``)
    finish jobs."""
    try:
        import ray
        from ray.util.queue import Empty, Queue
    except ImportError:
        raise SettingsError(f"--ray needs Ray, which is not installed: {RAY_HINT}") from None
    if address == "local":
        # Ray starts its worker processes at niceness 15, for a cluster's machines that run nothing else;
        # here they are the batch's workers on the user's machine, where beside any other busy process
        # they would get a sliver of a core (README, "Batches and clusters"). Local worker processes
        # (--workers) run at the batch's own niceness too.
        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                 _system_config={"worker_niceness": 0})
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actor = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1)(BatchWorker)
        count = min(gpus or workers, len(jobs))
        threads = 0 if gpus else max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, count))
        actors = [actor.remote(f"ray-{i}", None, threads) for i in range(count)]
        progress = Queue() if report else None
        forward = _Forward(progress) if progress is not None else None
        waiting = list(jobs)
        pending: dict[Any, Any] = {}

        def dispatch(worker: Any) -> None:
            if waiting:
                pending[worker.run.remote(waiting.pop(0), batch_dir, forward)] = worker

        def drain() -> Iterator[Record]:
            while progress is not None:
                try:
                    yield progress.get_nowait()
                except Empty:
                    return

        for worker in actors:
            dispatch(worker)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            yield from drain()
            for ref in done:
                worker = pending.pop(ref)
                yield ray.get(ref)
                dispatch(worker)
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class BatchSummary:
    done: int
    skipped: int
    failed: int
    grid: Path | None


def run_batch(jobs: Sequence[Job], batch_dir: str | Path, workers: int = 1, ray_address: str | None = None,
              on_record: Callable[[Record], None] | None = None, job_progress: bool = False,
              prepare: Callable[[Sequence[Settings]], None] | None = None) -> BatchSummary:
    """Run the jobs not already done in ``batch_dir`` (by key), record each in its manifest, and draw
    the contact sheet of every finished job. ``on_record`` sees each record (``skipped`` ones too)
    and, with ``job_progress``, each step's progress message (``progress``: the job's key, ``step``,
    ``of``). Jobs whose settings are invalid fail here, without a worker. ``prepare`` is given the settings
    of the jobs about to run (valid, not done before) before any worker starts: the command fetches their
    weight files there."""
    if workers < 1:
        raise SettingsError(f"--workers must be at least 1 (got {workers})")
    if ray_address is None and workers > 1:  # each is a process holding its own copy of the models
        import torch

        from .runtime import usable_cpus

        cores, gpus = usable_cpus(), torch.cuda.device_count()
        if workers > max(cores, gpus):
            raise SettingsError(f"--workers {workers} is more local worker processes than this machine has "
                                f"CPU cores ({cores}) or GPUs ({gpus}), and each holds its own copy of the "
                                f"models; give at most {max(cores, gpus)}")
    directory = Path(batch_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(directory)
    previous = manifest.latest()
    todo, checked, skipped, failed, done = [], [], 0, 0, 0
    for job in jobs:
        last = previous.get(job.key)
        if last and last.get("status") == "done" and all((directory / p).exists() for p in last["outputs"]):
            skipped += 1
            if on_record:
                on_record({"key": job.key, "job": job.index, "status": "skipped"})
            continue
        try:
            settings = build_settings(dict(job.settings))
        except SettingsError as exc:
            record = job.record(status="failed", error=_one_line(exc), seconds=0.0)
            manifest.append(record)
            failed += 1
            if on_record:
                on_record(record)
            continue
        if (directory / job.directory).exists():  # a try that did not finish: this batch's own folder
            shutil.rmtree(directory / job.directory)
        todo.append(job)
        checked.append(settings)
    if todo:
        if prepare is not None:
            prepare(checked)
        for job in todo:
            manifest.append(job.record(status="queued"))
        report = job_progress and on_record is not None
        records = (_run_ray(todo, str(directory), ray_address, workers, report) if ray_address
                   else _run_local(todo, str(directory), workers, report))
        for record in records:
            if "status" in record:
                manifest.append(record)
                done += record["status"] == "done"
                failed += record["status"] == "failed"
            if on_record:
                on_record(record)
    grid = contact_sheet(directory, jobs, manifest.latest())
    return BatchSummary(done, skipped, failed, grid)


def contact_sheet(directory: Path, jobs: Sequence[Job], records: Mapping[str, Record],
                  cell: int = 192) -> Path | None:
    """``batch_grid.png``: every finished job's image in job order, each fitted into a ``cell``-pixel
    square over its label (prompt, seed); None when no job has finished."""
    finished = [(job, records[job.key]) for job in jobs
                if records.get(job.key, {}).get("status") == "done" and records[job.key].get("outputs")]
    if not finished:
        return None
    columns = min(len(finished), max(1, math.ceil(math.sqrt(len(finished)))))
    rows = math.ceil(len(finished) / columns)
    font = ImageFont.load_default(size=12)
    caption = 34
    sheet = Image.new("RGB", (columns * cell, rows * (cell + caption)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (job, record) in enumerate(finished):
        x, y = (i % columns) * cell, (i // columns) * (cell + caption)
        with Image.open(directory / record["outputs"][0]) as image:
            scale = min((cell - 8) / image.width, (cell - 8) / image.height)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            # Small pictures are enlarged in whole blocks (pixel art stays crisp), large ones smoothly.
            thumb = image.convert("RGB").resize(size, Image.NEAREST if scale > 1 else Image.LANCZOS)
        sheet.paste(thumb, (x + (cell - thumb.width) // 2, y + (cell - thumb.height) // 2))
        label = job.label if record.get("seed") is None or "seed" in job.settings \
            else f"{job.label} (seed {record['seed']})"
        for line_no, line in enumerate(_wrap(label, 30)[:2]):
            draw.text((x + 4, y + cell + 2 + 15 * line_no), line, fill="black", font=font)
    path = directory / GRID
    sheet.save(path)
    return path


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return [*lines, line] if line else lines
