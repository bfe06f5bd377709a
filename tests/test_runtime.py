"""The process-wide choices a program makes: ``precision: auto`` (on a CPU bfloat16 only where this CPU
measures it faster than float32; on CUDA; an explicit setting as given) and glibc's allocator settings."""

from __future__ import annotations

import logging
import math
import os
import platform
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from pixray import runtime
from pixray.runtime import (
    CPU_BFLOAT16_MIN_SPEEDUP,
    choose_precision,
    cpu_bfloat16_is_faster,
    cpu_bfloat16_speedup,
    fit_threads_to_cpus,
    usable_cpus,
)

CPU = torch.device("cpu")


def _unmeasured() -> float:
    raise AssertionError("the bfloat16 speed was measured")


def _cpu(monkeypatch: pytest.MonkeyPatch, reports_bfloat16: bool, speedup: float | None) -> None:
    """A CPU that does or does not report AMX/AVX512-BF16 and measures ``speedup`` (None: never asked)."""
    monkeypatch.setattr(runtime, "cpu_has_fast_bfloat16", lambda: reports_bfloat16)
    monkeypatch.setattr(runtime, "cpu_bfloat16_speedup", _unmeasured if speedup is None else lambda: speedup)


def test_auto_is_float32_without_bfloat16_instructions_and_times_nothing(monkeypatch):
    _cpu(monkeypatch, reports_bfloat16=False, speedup=None)  # AVX2 only: emulated bfloat16 is not timed
    assert choose_precision("auto", CPU) == torch.float32
    assert not cpu_bfloat16_is_faster()


@pytest.mark.parametrize(("speedup", "expected"), [
    (0.7, torch.float32),  # AVX512-BF16 kernels where AMX is out of reach (a Xeon's)
    (CPU_BFLOAT16_MIN_SPEEDUP * 0.99, torch.float32),
    (CPU_BFLOAT16_MIN_SPEEDUP, torch.bfloat16),
    (5.6, torch.bfloat16),  # AMX
])
def test_auto_picks_bfloat16_only_where_it_measures_faster(monkeypatch, speedup, expected):
    _cpu(monkeypatch, reports_bfloat16=True, speedup=speedup)
    assert choose_precision("auto", CPU) == expected


@pytest.mark.parametrize("setting", ["float32", "bfloat16", "float16"])
def test_an_explicit_precision_is_used_as_given_without_timing(monkeypatch, setting):
    _cpu(monkeypatch, reports_bfloat16=True, speedup=None)
    assert choose_precision(setting, CPU) == getattr(torch, setting)


@pytest.mark.parametrize(("machine", "setting", "reports", "warned"), [
    ("x86_64", "bfloat16", False, True),  # AVX2 only: torch emulates bfloat16
    ("x86_64", "bfloat16", True, False),
    ("AMD64", "float16", False, True),  # Windows' name for it
    ("x86_64", "float16", True, False),  # AVX512-FP16 or AMX-FP16
    ("x86_64", "float16", None, False),  # flags not readable: not told
    ("x86_64", "float32", False, False),
    ("aarch64", "bfloat16", False, False),  # an ARM CPU's half precision may be native
])
def test_an_explicit_half_precision_this_cpu_would_emulate_is_warned_of(monkeypatch, caplog, machine, setting,
                                                                         reports, warned):
    monkeypatch.setattr(runtime.platform, "machine", lambda: machine)
    monkeypatch.setattr(runtime, "cpu_has_fast_bfloat16", lambda: reports)
    monkeypatch.setattr(runtime, "cpu_has_fast_float16", lambda: reports)
    with caplog.at_level(logging.WARNING, logger="pixray.runtime"):
        assert choose_precision(setting, CPU) == getattr(torch, setting)
        assert choose_precision(setting, torch.device("cuda")) == getattr(torch, setting)  # a GPU: never
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == warned
    if warned:
        assert warnings[0].startswith(f"setting 'precision': {setting} on this CPU is emulated (the CPU")


def test_float16_instructions_are_read_from_an_x86_cpus_flags(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: False, raising=False)
    listing = tmp_path / "cpuinfo"
    listing.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert runtime.cpu_has_fast_float16(listing) is False
    listing.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_fp16 amx_tile\n")
    assert runtime.cpu_has_fast_float16(listing) is True
    listing.write_text("processor\t: 0\nFeatures\t: fp asimd fphp asimdhp\n")  # an ARM CPU's
    assert runtime.cpu_has_fast_float16(listing) is None
    assert runtime.cpu_has_fast_float16(tmp_path / "absent") is None
    monkeypatch.setattr(torch.cpu, "_is_amx_fp16_supported", lambda: True, raising=False)
    assert runtime.cpu_has_fast_float16(tmp_path / "absent") is True


def test_the_cpus_maker_is_read_from_cpuinfo_or_the_platforms_processor(monkeypatch, tmp_path):
    read = runtime.cpu_vendor.__wrapped__  # the cached function reads each listing once per process
    listing = tmp_path / "cpuinfo"
    listing.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\n"
                       "processor\t: 1\nvendor_id\t: AuthenticAMD\n")
    assert read(listing) == "AuthenticAMD"
    monkeypatch.setattr(platform, "processor", lambda: "Intel64 Family 6 Model 85 Stepping 7, GenuineIntel")
    assert read(tmp_path / "absent") == "GenuineIntel"  # Windows
    monkeypatch.setattr(platform, "processor", lambda: "i386")  # macOS
    assert read(tmp_path / "absent") == ""
    listing.write_text("processor\t: 0\nFeatures\t: fp asimd\n")  # an ARM CPU's, no maker named
    assert read(listing) == ""


@pytest.mark.parametrize(("bf16_supported", "expected"), [(True, torch.bfloat16), (False, torch.float16)])
def test_auto_on_cuda_is_half_precision_without_timing(monkeypatch, bf16_supported, expected):
    _cpu(monkeypatch, reports_bfloat16=False, speedup=None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_supported)
    assert choose_precision("auto", torch.device("cuda")) == expected


def test_the_speed_probe_times_both_precisions_and_leaves_the_random_state_alone():
    torch.manual_seed(7)
    before = torch.get_rng_state()
    ratio = cpu_bfloat16_speedup(rows=16, repeats=1)
    assert math.isfinite(ratio) and ratio > 0
    assert torch.equal(torch.get_rng_state(), before)  # a run's seed still decides its pictures


def test_the_speed_probe_times_one_thread_and_gives_back_the_threads(monkeypatch):
    """Timings over several threads were so disturbed by other busy processes that auto's choice, and so
    a seed's picture, flipped between runs on one machine."""
    seen = []
    real = torch.nn.functional.linear
    monkeypatch.setattr(torch.nn.functional, "linear", lambda *args: seen.append(torch.get_num_threads())
                        or real(*args))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cpu_bfloat16_speedup(rows=4, repeats=2)
        assert seen == [1] * 6 and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_the_speed_probe_is_the_ratio_of_the_fastest_timings_after_a_warm_up(monkeypatch):
    # Turns alternate float32 and bfloat16; the first turn (a float32 call of 1 time unit, a bfloat16
    # one of 9) is not counted; then float32 takes 4 and 3 units, bfloat16 2 and 1: 3 / 1.
    ticks = iter([0, 1, 10, 19, 20, 24, 30, 32, 40, 43, 50, 51])
    monkeypatch.setattr(runtime, "_thread_clock", lambda: lambda: next(ticks))
    assert cpu_bfloat16_speedup(rows=4, repeats=2) == 3.0


@pytest.mark.skipif(not time.get_clock_info("thread_time").implementation.startswith("clock_gettime"),
                    reason="this system counts a thread's CPU time coarsely; the probe times the wall clock")
def test_the_speed_probe_does_not_count_time_spent_off_the_cpu(monkeypatch):
    """Timed by the wall clock, the probe's ratio swung from 1.3 to 7 on a 2-core CPU while other processes
    were busy, crossing the line auto decides at: a batch worker loaded its CLIP twice (once per precision)
    and a seed's picture differed between two workers. Here bfloat16's layer is made to wait 20 ms off the
    CPU each call, as a thread does while another process has its core: the ratio must not move."""
    real = torch.nn.functional.linear

    def waiting(x, weight, bias):
        if x.dtype == torch.bfloat16:
            time.sleep(0.02)
        return real(x, weight, bias)

    quiet = cpu_bfloat16_speedup(rows=64, repeats=3)
    monkeypatch.setattr(torch.nn.functional, "linear", waiting)
    kept_waiting = cpu_bfloat16_speedup(rows=64, repeats=3)
    assert 0.5 < kept_waiting / quiet < 2  # by the wall clock it falls tenfold or more
    # The op's CPU time is the calling thread's (one torch thread, as every test has: conftest's
    # _one_thread, runs it there), so the clock sees it.
    x, weight = torch.full((256, 768), 0.01), torch.full((3072, 768), 0.01)
    timings = []
    for _ in range(5):
        wall, cpu = time.perf_counter(), time.thread_time()
        real(x, weight)
        timings.append((time.perf_counter() - wall, time.thread_time() - cpu))
    assert max(cpu for _, cpu in timings) > 0.5 * min(wall for wall, _ in timings)


# Two threads that both stay alive (as a server's pool does) allocate and write 200 MB in 2 MB tensors
# in turn, the first freeing its tensors before the second starts; prints each one's page faults.
_TWO_THREADS = textwrap.dedent("""
    import resource, sys, threading
    import torch
    from pixray.runtime import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    faults, turns, done = {}, [threading.Event() for _ in range(3)], threading.Event()

    def work(i):
        turns[i].wait()
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        blocks = [torch.ones(2**19) for _ in range(100)]
        faults[i] = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before
        del blocks
        turns[i + 1].set()
        done.wait()

    threads = [threading.Thread(target=work, args=(i,)) for i in (0, 1)]
    for thread in threads:
        thread.start()
    turns[0].set()
    turns[2].wait()
    done.set()
    for thread in threads:
        thread.join()
    print(faults[0], faults[1])
""")


def _page_faults_of_two_threads(mode: str) -> tuple[int, int]:
    result = subprocess.run([sys.executable, "-c", _TWO_THREADS, mode], capture_output=True, text=True,
                            timeout=120, check=True)
    first, second = result.stdout.split()
    return int(first), int(second)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator settings")
def test_memory_one_thread_freed_is_reused_by_the_next_without_page_faults():
    first, second = _page_faults_of_two_threads("keep")
    assert first > 20_000  # 200 MB of fresh 4 kB pages
    assert second < first / 2, (first, second)
    # glibc's defaults: the second thread's own arena faults its memory in again.
    first, second = _page_faults_of_two_threads("default")
    assert second > first / 2, (first, second)


def test_keep_freed_memory_sets_glibcs_options(monkeypatch):
    calls = []

    class Libc:
        @staticmethod
        def mallopt(option: int, value: int) -> int:
            calls.append((option, value))
            return 1

    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: Libc)
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    assert runtime.keep_freed_memory()
    # M_MMAP_MAX 0, M_TRIM_THRESHOLD never, M_TOP_PAD 256 MB, M_ARENA_MAX 1
    assert sorted(calls) == sorted([(-4, 0), (-1, 2**31 - 1), (-2, 2**28), (-8, 1)])


@pytest.mark.parametrize("files, membership, quota_cpus", [
    ({}, "", None),  # no cgroup files
    ({"cpu.max": "max 100000\n"}, "0::/\n", None),  # cgroup v2, no quota
    ({"cpu.max": "150000 100000\n"}, "0::/\n", 2),  # v2: 1.5 CPUs' time, rounded up
    ({"pod/cpu.max": "50000 100000\n", "cpu.max": "max 100000\n"}, "0::/pod\n", 1),  # its own group's
    ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "1:cpu,cpuacct:/\n", None),
    ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "1:cpu,cpuacct:/\n", 1),
    ({"cpu/k/cpu.cfs_quota_us": "100000\n", "cpu/k/cpu.cfs_period_us": "100000\n"}, "1:cpu:/k\n", 1),
])
def test_usable_cpus_are_the_affinitys_or_fewer_under_a_cpu_quota(tmp_path, files, membership, quota_cpus):
    cgroups = tmp_path / "cgroup"
    for name, text in files.items():
        (cgroups / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroups / name).write_text(text)
    (tmp_path / "membership").write_text(membership)
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if quota_cpus is None else min(affinity, quota_cpus)
    assert usable_cpus(cgroups, tmp_path / "membership") == expected


def test_torchs_threads_are_fitted_to_the_usable_cpus_never_raised(monkeypatch):
    """torch sizes its pool by the CPUs the process may run on, not by a container's CPU quota."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setattr(runtime, "usable_cpus", lambda: 1)
        assert fit_threads_to_cpus() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr(runtime, "usable_cpus", lambda: 8)
        assert fit_threads_to_cpus() == 1  # more CPUs than threads: left as it is
    finally:
        torch.set_num_threads(threads)
