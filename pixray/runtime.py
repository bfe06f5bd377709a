"""Choosing the device and the arithmetic precision of a run, and what a program may use of its machine
(CPUs, memory, the allocator's habits); running out of memory said as such."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
import math
import os
import platform
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from .errors import RunError
from .options import SettingsError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}

log = logging.getLogger(__name__)


def choose_device(setting: str = "auto", cuda_device: str = "cuda") -> torch.device:
    """``auto``: cuda if present, then mps, then cpu. A named device must exist. A run on CUDA uses
    ``cuda_device`` (``cuda`` or ``cuda:N``, the setting of that name), which must exist too."""
    if setting == "auto":
        if torch.cuda.is_available():
            return _cuda(cuda_device)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise SettingsError(f"setting 'device': {setting!r} is not available here (no CUDA); use cpu or auto")
    if setting == "mps" and not torch.backends.mps.is_available():
        raise SettingsError("setting 'device': 'mps' is not available here; use cpu or auto")
    return _cuda(cuda_device) if setting == "cuda" else torch.device(setting)


def _cuda(name: str) -> torch.device:
    device, count = torch.device(name), torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise SettingsError(f"setting 'cuda_device': {name!r} is not on this machine; it has {count} CUDA "
                            f"device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    return device


def cpu_has_fast_bfloat16() -> bool:
    """Whether this CPU reports instructions that multiply bfloat16 in hardware (AMX or AVX512-BF16).

    Without either, torch emulates bfloat16 matmuls and they run far slower than float32
    (measured: a 2048^2 matmul 50 s vs 0.15 s on an AVX2-only AMD EPYC).
    """
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def cpu_fields(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, str]:
    """The first processor's fields in Linux's ``cpuinfo`` listing (``model name``, ``cpu family``,
    ``flags``, ...; every core's are the same), or none where it cannot be read (not Linux)."""
    try:
        listing = cpuinfo.read_text(errors="replace")
    except OSError:
        return {}
    return {key.strip(): value.strip() for key, value in
            (line.split(":", 1) for line in listing.split("\n\n")[0].splitlines() if ":" in line)}


@functools.cache  # read once per process: every float32 linear layer of a perceptor asks
def cpu_vendor(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's maker as x86 CPUs name it ("GenuineIntel", "AuthenticAMD", ...): ``cpuinfo``'s
    ``vendor_id`` on Linux, else the name that ends :func:`platform.processor`'s text (Windows writes
    "AMD64 Family 25 Model 97 Stepping 2, AuthenticAMD"); "" where neither says."""
    vendor = cpu_fields(cpuinfo).get("vendor_id")
    if vendor is not None:
        return vendor
    _, comma, named = platform.processor().rpartition(",")
    return named.strip() if comma else ""


def cpu_has_fast_float16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool | None:
    """Whether this CPU reports instructions that torch's float16 matmuls use (AMX-FP16, or AVX512-FP16,
    read from ``cpuinfo``'s flags, which torch has no probe for); None where its flags cannot be read
    (not Linux; not an x86 CPU, whose listing says ``flags``)."""
    if getattr(torch.cpu, "_is_amx_fp16_supported", lambda: False)():
        return True
    flags = cpu_fields(cpuinfo).get("flags")
    return None if flags is None else "avx512_fp16" in flags.split()


def emulated_on_cpu(dtype: torch.dtype) -> str | None:
    """Why torch would emulate ``dtype``'s matmuls on this CPU (so that they run many times slower than
    float32's: the README has figures), or None where it does not, or where that cannot be told (an ARM
    CPU may multiply half precision natively; only x86 CPUs report what is checked)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    if dtype == torch.bfloat16 and not cpu_has_fast_bfloat16():
        return "the CPU reports neither AMX nor AVX512-BF16"
    if dtype == torch.float16 and cpu_has_fast_float16() is False:
        return "the CPU reports neither AMX-FP16 nor AVX512-FP16"
    return None


#: How many times faster than float32 a CPU must compute :func:`cpu_bfloat16_speedup`'s layer in bfloat16
#: for ``precision: auto`` to pick bfloat16 there: far from the ratios measured on each kind of CPU in
#: docs/performance.md (AMX, and AMD Zen 4's AVX512-BF16, well above it; AVX512-BF16 kernels on a Xeon
#: whose AMX is out of reach below 1), so the choice does not flip from run to run on one machine.
CPU_BFLOAT16_MIN_SPEEDUP = 1.3


def cpu_bfloat16_speedup(rows: int = 128, repeats: int = 5) -> float:
    """How many times faster one core computes a ViT-B MLP's first linear layer over ``rows`` tokens
    (``[rows, 768] x [3072, 768]ᵀ`` plus a bias) in bfloat16 than in float32: the fastest of ``repeats``
    timings of each after one warm-up of each, on one torch thread (restored after). Each timing is
    the thread's own CPU time (:func:`_thread_clock`), so the time it waits while other processes have
    the core does not count: timed by the wall clock, the ratio swung widely while other processes were
    busy (batch workers starting together, two runs at once, a test suite over worker processes;
    docs/performance.md has the figures), and where it crossed
    :data:`CPU_BFLOAT16_MIN_SPEEDUP` the choice flipped from run to run, and with it a seed's picture.
    Over several threads an op waits for the slowest of them: one thread is timed.

    A CPU can report AMX or AVX512-BF16 and still multiply bfloat16 slower than float32: a virtual
    machine or kernel that keeps AMX's tiles from processes, ``ONEDNN_MAX_CPU_ISA`` below AMX, or a
    CPU whose AVX512-BF16 dot products run at half the rate of its float32 FMAs."""
    layers = {dtype: (torch.full((rows, 768), 0.01, dtype=dtype), torch.full((3072, 768), 0.01, dtype=dtype),
                      torch.zeros(3072, dtype=dtype)) for dtype in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(layers, float("inf"))
    clock = _thread_clock()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for turn in range(repeats + 1):
                for dtype, (x, weight, bias) in layers.items():
                    start = clock()
                    torch.nn.functional.linear(x, weight, bias)
                    elapsed = clock() - start
                    if turn:  # the first turn warms up (oneDNN builds its kernels)
                        best[dtype] = min(best[dtype], elapsed)
    finally:
        torch.set_num_threads(threads)
    return best[torch.float32] / best[torch.bfloat16]


def _thread_clock() -> Callable[[], float]:
    """A clock of the calling thread's CPU time in seconds where the system counts it finely
    (``clock_gettime``'s thread clock: Linux, macOS, the BSDs), else the wall clock (Windows counts a
    thread's time in ticks of about 15 ms, longer than the speed probe's layer takes). On one torch
    thread an op runs on the calling thread, so its CPU time is the op's own."""
    if time.get_clock_info("thread_time").implementation.startswith("clock_gettime"):
        return time.thread_time
    return time.perf_counter


def cpu_auto_precision() -> tuple[torch.dtype, float | None]:
    """``precision: auto``'s dtype on this CPU, and the bfloat16 speed-up that decided it: bfloat16 where
    the CPU reports AMX or AVX512-BF16 (:func:`cpu_has_fast_bfloat16`) and :func:`cpu_bfloat16_speedup`
    is at least :data:`CPU_BFLOAT16_MIN_SPEEDUP`, else float32; the speed-up is None where the CPU
    reports neither (nothing is timed: emulated bfloat16 is always slow)."""
    if not cpu_has_fast_bfloat16():
        return torch.float32, None
    speedup = cpu_bfloat16_speedup()
    return (torch.bfloat16 if speedup >= CPU_BFLOAT16_MIN_SPEEDUP else torch.float32), speedup


def cpu_bfloat16_is_faster() -> bool:
    """Whether ``precision: auto`` computes in bfloat16 on this CPU (:func:`cpu_auto_precision`)."""
    return cpu_auto_precision()[0] == torch.bfloat16


def weights_precision(device: torch.device, dtype: torch.dtype) -> torch.dtype:
    """The precision a run computing in ``dtype`` on ``device`` keeps its perceptors' matmul weights in:
    ``dtype`` itself on the CPU (no cast per call, half the memory; measured there), float32 elsewhere."""
    return dtype if device.type == "cpu" else torch.float32


def choose_precision(setting: str, device: torch.device) -> torch.dtype:
    """The dtype perceptors compute in: ``auto`` picks bfloat16 or float16 on CUDA, and on a CPU bfloat16
    where it measures faster than float32 (:func:`cpu_auto_precision`), else float32. A half precision
    asked for by name is used as asked, with a warning where this CPU would emulate it."""
    if setting != "auto":
        dtype = _DTYPES[setting]
        reason = emulated_on_cpu(dtype) if device.type == "cpu" else None
        if reason is not None:
            log.warning("setting 'precision': %s on this CPU is emulated (%s): many times slower than "
                        "float32; auto picks the fastest precision here", setting, reason)
        return dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu":
        return cpu_auto_precision()[0]
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype,
             cache: bool = True) -> contextlib.AbstractContextManager:
    """Mixed-precision context for perceptor passes (a no-op for float32); ``cache`` False turns off
    autocast's cache of cast weights, which CUDA graph capture does not allow."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype, cache_enabled=cache)


#: What a run that ran out of memory is told to lower.
MEMORY_ADVICE = ("ask for a smaller size, fewer clip_models, or fewer num_cuts a batch (more batches keep "
                 "the total)")


def device_vector(device: torch.device, *values: float) -> torch.Tensor:
    """(len(values),) float32 of ``values`` on ``device``, filled there. ``torch.tensor(values,
    device=...)`` copies them from host memory, which makes the host wait for a GPU: in a step,
    everything queued before it must finish first."""
    vector = torch.empty(len(values), device=device)
    for i, value in enumerate(values):
        vector[i].fill_(value)
    return vector


@contextlib.contextmanager
def memory_errors_said(device: torch.device, when: Callable[[], str], asked: str) -> Iterator[None]:
    """Running out of ``device``'s memory becomes a :class:`RunError` saying so and ``when()`` (e.g.
    "at step 3"), with what the run asked for (``asked``) and what to lower, instead of a traceback.

    torch raises ``OutOfMemoryError`` on CUDA; on the CPU an allocation the system refuses, and on
    Apple's MPS running out, are RuntimeErrors that say so. The frames the error went through are
    cleared: the RunError still refers to it, and a process that carries on (a server, a batch worker)
    must get back the tensors those frames held.
    """
    try:
        yield
    except RuntimeError as exc:
        text = str(exc)
        if not (isinstance(exc, torch.OutOfMemoryError) or "can't allocate memory" in text
                or "out of memory" in text):  # the CPU's allocator, Apple's MPS
            raise
        traceback.clear_frames(exc.__traceback__)
        tried = re.search(r"(?:Tried to allocate|you tried to allocate) ([\d.]+ ?[KMGT]?i?B|\d+ bytes)", text)
        size = f" (an allocation of {tried[1]})" if tried else ""
        where = f"{device.type.upper()} memory {when()}{size}"
        raise RunError(f"out of {where}: {asked}; {MEMORY_ADVICE}") from None


@contextlib.contextmanager
def cudnn_deterministic(on: bool) -> Iterator[None]:
    """Within the block, cuDNN picks only deterministic algorithms when ``on`` (setting
    ``cudnn_determinism``, Pixray's ``-d``); the process's own setting is restored after it, so a
    run sets nothing for the rest of the program. No effect where cuDNN is not used."""
    if not on:
        yield
        return
    before = torch.backends.cudnn.deterministic
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic = before


#: Where Linux shows the cgroups and which of them this process is in.
CGROUPS, MEMBERSHIP = Path("/sys/fs/cgroup"), Path("/proc/self/cgroup")


def _cgroup_files(v2_name: str, controller: str, v1_name: str, cgroups: Path = CGROUPS,
                 membership: Path = MEMBERSHIP) -> list[Path]:
    """The files that may hold a limit on this process: cgroup v2's ``v2_name`` and v1's
    ``controller/v1_name``, in the group ``membership`` names for it and at the root (which, inside a
    container, is the container's own group)."""
    own_v2 = own_v1 = ""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and not controllers:
            own_v2 = path.strip("/")
        elif controller in controllers.split(","):
            own_v1 = path.strip("/")
    v2 = dict.fromkeys([cgroups / own_v2, cgroups])
    v1 = dict.fromkeys([cgroups / controller / own_v1, cgroups / controller])
    return [folder / v2_name for folder in v2] + [folder / v1_name for folder in v1]


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def usable_memory(cgroups: Path = CGROUPS, membership: Path = MEMBERSHIP) -> int:
    """The machine's memory in bytes, or a cgroup's limit on this process where that is less (cgroup
    v2's ``memory.max``, ``max`` for none; v1's ``memory.limit_in_bytes``, a huge number for none):
    in a container (``docker run --memory``, a Kubernetes pod's limit) the machine's figure is the
    host's, and a process past the limit is killed. 0 where neither is known (Windows has no
    ``os.sysconf``): callers then take their small choice."""
    try:
        limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        limit = 0
    for path in _cgroup_files("memory.max", "memory", "memory.limit_in_bytes", cgroups, membership):
        text = _read(path)
        if text is not None and text.isdigit() and int(text) > 0:
            limit = min(limit, int(text)) if limit else int(text)
    return limit


def usable_cpus(cgroups: Path = CGROUPS, membership: Path = MEMBERSHIP) -> int:
    """How many CPUs this process may keep busy: those it may run on (its affinity: ``taskset``,
    ``docker --cpuset-cpus``), or fewer under a CPU quota (``docker --cpus``, a Kubernetes pod's CPU
    limit: cgroup v2's ``cpu.max``, v1's ``cpu.cfs_quota_us`` over ``cpu.cfs_period_us``), rounded up.
    ``os.cpu_count()`` counts the host's CPUs whatever the container."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    files = _cgroup_files("cpu.max", "cpu", "cpu.cfs_quota_us", cgroups, membership)
    for path in files:
        text = _read(path)
        if text is None:
            continue
        if path.name == "cpu.max":
            quota, _, period = text.partition(" ")
        else:
            quota, period = text, _read(path.with_name("cpu.cfs_period_us")) or ""
        if quota.isdigit() and period.isdigit() and int(quota) > 0 and int(period) > 0:
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    return max(1, cpus)


def fit_threads_to_cpus() -> int:
    """Lower torch's thread count to :func:`usable_cpus` where it is more, and return the count.

    torch sizes its pool by the CPUs the process may run on, not by a CPU quota: in a container given 2
    CPUs' time on a 64-core host, 64 threads would take turns on them, each op waiting for the slowest.
    This changes the whole process, so only programs call it (the command lines, the Cog predictor),
    never the library."""
    cpus = usable_cpus()
    if torch.get_num_threads() > cpus:
        torch.set_num_threads(cpus)
    return torch.get_num_threads()


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory for reuse, in one arena for every thread, instead of
    returning it to the OS.

    CLIP's forward and backward passes allocate and free the same large buffers every step; by
    default glibc serves each from fresh mmap'd pages, and the page faults cost about a third of
    a CPU step (measured: ViT-B/16, 30 cutouts, 2 cores: 31 s -> 21.6 s per forward+backward,
    system time 16 s -> 1.4 s). And it gives each thread that allocates its own arena, whose freed
    memory other threads never reuse: a server or page running each generation on another thread of
    its pool grew by a generation's working set per thread, and faulted it in anew in that
    generation's first step (docs/performance.md has the figures). The process keeps its peak memory in
    exchange. The one-arena part holds only if this runs before a second thread allocates (glibc
    fixes its arena limit then), so call it first thing; a process whose threads start earlier (Cog's
    worker) sets ``MALLOC_ARENA_MAX=1`` in its environment instead (cog.yaml). This changes the whole
    process, so only programs call it (the CLI and its page, the Cog predictor, the benchmarks, the
    training script), never the library. Returns whether the allocator accepted the settings (False
    off glibc).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_max, m_arena_max = -1, -2, -4, -8
    return all([mallopt(m_mmap_max, 0), mallopt(m_trim_threshold, 2**31 - 1), mallopt(m_top_pad, 2**28),
                mallopt(m_arena_max, 1)])
