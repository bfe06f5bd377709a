"""Seconds per iteration and peak memory of a generation, with random-weight CLIPs of the real sizes.

Prints figures; passes or fails nothing. Runs without downloads: the perceptors are open_clip
models of the real architectures (ViT-B/32, ViT-B/16, ...) with random weights, which cost exactly
what the trained ones cost.

    python bench/benchmark.py --drawer pixel --quality normal
    python bench/benchmark.py --drawer fast_pixel --quality draft --precision bfloat16 --device cuda
    python bench/benchmark.py --drawer vqgan --quality normal   (imagenet_f16_16384's sizes, random weights)
    python bench/benchmark.py --drawer vdiff --vdiff_model cc12m_1 --clip_models ViT-B/16 --quality draft
    python bench/benchmark.py --drawer super_resolution --quality normal
                                (the real networks, random weights written to a temporary weights dir)
    python bench/benchmark.py --drawer fast_pixel --quality normal --baseline   (and stock open_clip, fp32)

``--baseline`` then runs the same generation with open_clip's stock modules in float32 in the same
process, and prints the ratio of the two medians: a speed-up measured side by side on this machine.
"""

from __future__ import annotations

import argparse
import logging
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import open_clip
import torch
import yaml
from scratch import scratch_directory

from pixray.drawers.super_resolution import UPSCALERS
from pixray.drawers.vdiff import VDIFF_MODELS
from pixray.drawers.vqgan_model import VQGAN, VQMODEL
from pixray.engine import Run
from pixray.model_cache import ModelCache
from pixray.perceptors import CLIP_MODELS, Perceptor
from pixray.perceptors.onednn_fusion import fuses, linear_fuses
from pixray.runtime import (
    CPU_BFLOAT16_MIN_SPEEDUP,
    choose_device,
    choose_precision,
    cpu_auto_precision,
    cpu_fields,
    keep_freed_memory,
    weights_precision,
)
from pixray.settings import Settings, build_settings, resolve

M = TypeVar("M")


def random_perceptors(names: tuple[str, ...], device: torch.device, fast: bool = True,
                      weights: torch.dtype = torch.float32) -> list[Perceptor]:
    """Perceptors of the named catalog architectures with random weights (the same for a name), their
    matmul weights stored in ``weights`` as the model cache stores them for a run."""
    perceptors = []
    for name in names:
        torch.manual_seed(0)
        model = open_clip.create_model(CLIP_MODELS.lookup(name).architecture)
        perceptors.append(Perceptor(name, model, fast=fast).store_weights_in(weights).to(device))
    return perceptors


def cpu_description() -> str:
    """The CPU's model name and the instruction sets that decide its speed here."""
    info = cpu_fields()
    model = info.get("model name") or platform.processor() or "cpu"
    # A virtual machine may name only the brand ("AMD EPYC"); family and model tell its generation
    # (AMD's 25/17 is Zen 4).
    if info.get("cpu family") and info.get("model"):
        model += f" (family {info['cpu family']}, model {info['model']})"
    flags = set(info.get("flags", "").split())
    isa = [name for flag, name in (("amx_bf16", "AMX-BF16"), ("avx512_bf16", "AVX512-BF16"),
                                   ("avx512f", "AVX512"), ("avx2", "AVX2")) if flag in flags]
    return f"{model}; {', '.join(isa) or 'no AVX2'}"


def time_run(settings: Settings, perceptors: list[Perceptor], warmup: int,
             models: ModelCache | None = None) -> tuple[Run, list[float]]:
    """Run the generation; seconds of each iteration (the first includes the run's setup: prompts
    encoded, drawer built)."""
    last = time.perf_counter()
    run = Run(settings, perceptors, models)
    times = []
    for step in run:
        if step.is_final:
            break
        step.loss  # noqa: B018 - waits for the device so the time is the step's
        now = time.perf_counter()
        times.append(now - last)
        last = now
    return run, times


# The published config of imagenet_f16_16384 (taming-transformers), minus its loss section.
IMAGENET_F16_16384 = {"embed_dim": 256, "n_embed": 16384, "ddconfig": {
    "double_z": False, "z_channels": 256, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0}}


def random_weight_settings(drawer: str) -> dict[str, str]:
    """The settings that give ``drawer`` its network with random weights where it needs files (vqgan:
    :func:`random_vqgan_files` in a new temporary folder); none for the others."""
    if drawer != "vqgan":
        return {}
    return random_vqgan_files(scratch_directory("pixray-bench-"))


def random_vqgan_files(directory: Path) -> dict[str, str]:
    """Config + Lightning-style checkpoint of imagenet_f16_16384's architecture with random weights,
    loaded through the real loader (vqgan_config/vqgan_checkpoint settings)."""
    torch.manual_seed(0)
    config, ckpt = directory / "vqgan.yaml", directory / "vqgan.ckpt"
    config.write_text(yaml.safe_dump({"model": {"target": VQMODEL, "params": IMAGENET_F16_16384}}))
    torch.save({"state_dict": VQGAN(IMAGENET_F16_16384, gumbel=False).state_dict()}, ckpt)
    return {"vqgan_config": str(config), "vqgan_checkpoint": str(ckpt)}


class UncheckedFiles(ModelCache):
    """A cache reading weight files from its directory without the manifest's checksums (random
    stand-ins of the real networks cannot match them)."""

    def get_file(self, filename: str, load: Callable[[Path], M]) -> M:
        path = self.weights_dir / filename
        return self.get(f"bench:{path}", lambda: load(path))


def random_network_files(settings: Settings, device: torch.device) -> ModelCache | None:
    """For vdiff and super_resolution: their network (the real architecture) with random weights,
    saved as its release is, in a cache that reads it through the real loader; else None."""
    torch.manual_seed(0)
    if settings.drawer == "vdiff":
        from diffusion import get_model

        name = settings.section("vdiff").vdiff_model
        network, filename = get_model(name)(), VDIFF_MODELS[name].file
    elif settings.drawer == "super_resolution":
        from spandrel.architectures.ESRGAN import ESRGAN

        network, filename = ESRGAN(), UPSCALERS[settings.section("super_resolution").super_resolution_model]
    else:
        return None
    directory = scratch_directory("pixray-bench-")
    torch.save(network.state_dict(), directory / filename)
    return UncheckedFiles(device, directory)


def peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--drawer", default="pixel")
    parser.add_argument("--quality", default="normal")
    parser.add_argument("--clip_models", default=None, help="comma-separated; default from quality")
    parser.add_argument("--size", default=None, help="'width height'; default from quality")
    parser.add_argument("--iterations", type=int, default=3, help="timed iterations")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--vdiff_model", default=None, help="with --drawer vdiff (default: the setting's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--cuda_graphs", action="store_true",
                        help="setting cuda_graphs: the perceptor passes replayed as CUDA graphs (CUDA only)")
    parser.add_argument("--baseline", action="store_true",
                        help="also time open_clip's stock modules in float32 and print the speed-up")
    parser.add_argument("--rounds", type=int, default=1,
                        help="with --baseline: rounds of (this path, baseline), alternating")
    args = parser.parse_args()
    keep_freed_memory()
    logging.basicConfig(level=logging.ERROR)  # open_clip warns that random weights are random
    if args.threads:
        torch.set_num_threads(args.threads)

    values = {"drawer": args.drawer, "quality": args.quality, "device": args.device,
              "precision": args.precision, "seed": 0, "prompts": "a red circle on a blue background",
              "iterations": args.warmup + args.iterations, "clip_models": args.clip_models, "size": args.size,
              "vdiff_model": args.vdiff_model, "cuda_graphs": args.cuda_graphs or None}
    values.update(random_weight_settings(args.drawer))
    given = {k: v for k, v in values.items() if v is not None}
    settings = build_settings(given)
    device = choose_device(settings.device)
    chosen = ""
    if settings.precision == "auto" and device.type == "cpu":  # the run's own choice, and its measure
        dtype, speedup = cpu_auto_precision()
        chosen = ("auto: no AMX or AVX512-BF16 reported; " if speedup is None else
                  f"auto: bfloat16 measured {speedup:.1f}x float32's speed in a linear layer, "
                  f"picked from {CPU_BFLOAT16_MIN_SPEEDUP}x; ")
    else:
        dtype = choose_precision(settings.precision, device)
    t0 = time.perf_counter()
    weights = weights_precision(device, dtype)
    perceptors = random_perceptors(resolve(settings).clip_models, device, weights=weights)
    build_s = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    models = random_network_files(settings, device)
    run, times = time_run(settings, perceptors, args.warmup, models)
    del perceptors
    timed = times[args.warmup:]
    plan = run.plan
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_description()
    print(f"drawer={args.drawer} quality={args.quality} size={run.drawer.width}x{run.drawer.height} "
          f"models={','.join(plan.clip_models)} cuts={plan.num_cuts}x{plan.batches}")
    precision = str(dtype).removeprefix("torch.")
    passes = ", ".join(f"{label} {len(run._passes(i, plan.num_cuts))}"
                       for i, label in enumerate(run.perceptor_labels))
    labelled = list(zip(run.perceptors, run.perceptor_labels, strict=True))

    def using(part: str) -> str:
        """The perceptors using a part of the fast path (with its count where it is one), or 'none'."""
        values = [(label, getattr(perceptor, part)) for perceptor, label in labelled]
        named = [label if value is True else f"{label} {value}" for label, value in values if value]
        return ", ".join(named) or "none"

    class_token, pools, folded, convolutions, patches, linears = (using(part) for part in (
        "class_token_block", "class_token_pool", "folded_batch_norms", "fused_convolutions", "patch_matmul",
        "fused_bias_linears"))
    # Switched, but torch's modules compute them in this precision here:
    if not fuses(device, weights):
        convolutions = f"none ({convolutions} switched; torch's modules in {precision} here)"
    if not linear_fuses(device, weights):
        linears = f"none ({linears} switched; torch's modules in {precision} here)"
    print(f"device={device} ({name}; {torch.get_num_threads()} threads) precision={precision} "
          f"({chosen}matmul weights stored in {str(weights).removeprefix('torch.')}) "
          f"perceptors=fast path (batch-first attention, fused QuickGELU; class-token last block: "
          f"{class_token}; attention pool for its pooled query alone: {pools}; batch norms folded: {folded}; "
          f"ReLUs and residual adds in oneDNN's convolutions (stem and bottlenecks): {convolutions}; "
          f"patch embedding as a matmul: {patches}; bias fused into oneDNN's matmul: {linears}), "
          f"passes per cutout batch: {passes}; CUDA graphs: "
          f"{f'{run.graphed_passes.captures} captured' if run.graphed_passes else 'off'}")
    median = statistics.median(timed)
    print(f"s/iteration: median {median:.3f}  min {min(timed):.3f}  "
          f"(over {len(timed)} iterations after {args.warmup} warm-up; first, with the run's setup, "
          f"{times[0]:.3f}); the whole run: {sum(times):.2f} s for {len(times)} iterations")
    print(f"peak memory: {peak_memory_mib(device):.0f} MiB "
          f"({'GPU allocated' if device.type == 'cuda' else 'process RSS'}); model build {build_s:.1f} s")
    del run
    if args.baseline:
        # Alternate the two paths so neither gains from running second on memory the first
        # already faulted in; each round rebuilds both ensembles.
        stock_settings = build_settings({**given, "precision": "float32"})
        fast_timed, stock_timed = list(timed), []
        for round_ in range(args.rounds):
            if round_:
                _, times = time_run(settings, random_perceptors(plan.clip_models, device, weights=weights),
                                    args.warmup)
                fast_timed += times[args.warmup:]
            stock = random_perceptors(plan.clip_models, device, fast=False)
            _, times = time_run(stock_settings, stock, args.warmup)
            stock_timed += times[args.warmup:]
            del stock
        fast_median, stock_median = statistics.median(fast_timed), statistics.median(stock_timed)
        print(f"baseline (stock open_clip modules, float32), {args.rounds} round(s) alternating with the "
              f"above: s/iteration median {stock_median:.3f} (this path: {fast_median:.3f} over "
              f"{len(fast_timed)} iterations); process peak after both {peak_memory_mib(device):.0f} MiB")
        print(f"speed-up: {stock_median / fast_median:.2f}x (baseline median / median)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
