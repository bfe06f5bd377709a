#!/usr/bin/env bash
# Issue 19's GPU figures in one go, for a GPU lent for a few minutes: each check's output goes to the
# console and to OUTDIR/NAME.txt. Meant to take about 5 minutes on an H100/H200 (most of it building
# random-weight models and starting the Cog server); needs no downloads.
#
#   bash bench/gpu_checks.sh [OUTDIR]            (default gpu-checks)
#   bash bench/gpu_checks.sh --smoke [OUTDIR]    (the same checks, tiny, on whatever device is there:
#                                                 proves the script and the installed packages first)
#
# A host with PyTorch but without pixray's other packages: bash bench/gpu_wheels.sh there-python-version
# here, carry .whl there, `python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl`
# and run this with PYTHONPATH=/tmp/site. PYTHON picks the interpreter (default python3).
set -uo pipefail
smoke=0
if [ "${1:-}" = "--smoke" ]; then smoke=1; shift; fi
out=${1:-gpu-checks}
mkdir -p "$out"
py=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

# check NAME SECONDS COMMAND...: runs COMMAND under a time limit, its output teed to OUTDIR/NAME.txt.
check() {
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.txt"
    echo "== $name: exit ${PIPESTATUS[0]}"
}

if [ "$smoke" = 1 ]; then
    device=auto normal=(--iterations 1 --warmup 1) short=(--iterations 1 --warmup 0) predictions=2
    graphed_steps=3
    quality_normal=draft quality_best=draft half=()  # float16 on a CPU is emulated: minutes a step
else
    device=cuda normal=(--iterations 247 --warmup 3) short=(--iterations 20 --warmup 3) predictions=4
    graphed_steps=30
    quality_normal=normal quality_best=best half=(--precision float16)
fi

check machine 240 "$py" -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
command -v nvidia-smi > /dev/null && check nvidia-smi 30 nvidia-smi \
    --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
# Goal: quality normal, 250 iterations in <= 10 s on an H100/H200 ("the whole run" line).
check normal_auto 300 "$py" bench/benchmark.py --drawer fast_pixel --quality "$quality_normal" \
    --device "$device" "${normal[@]}"
# Goal: quality best within 8 GB of GPU memory (a T4-class Replicate machine has 16).
check best_auto 240 "$py" bench/benchmark.py --drawer fast_pixel --quality "$quality_best" \
    --device "$device" "${short[@]}"
# The same with the default drawer, whose decoder's activations at best's 768x432 are the largest.
check vqgan_best 240 "$py" bench/benchmark.py --drawer vqgan --quality "$quality_best" \
    --device "$device" "${short[@]}"
# Goal: the first streamed frame within 1 s of the request on a warm server (predictions 2 on).
check first_frame 360 "$py" bench/first_frame.py --quality "$quality_normal" --device "$device" \
    --predictions "$predictions"
# The levers and the rest come after the goals' figures, in case a short lease ends first.
# normal_auto again with the perceptor passes replayed as CUDA graphs (setting cuda_graphs, off by default
# until measured here), then both ways side by side: their speed and how far their images and losses differ.
check normal_graphs 300 "$py" bench/benchmark.py --drawer fast_pixel --quality "$quality_normal" \
    --device "$device" --cuda_graphs "${normal[@]}"
check graphed_steps 240 "$py" bench/graphed_steps.py --quality "$quality_normal" --steps "$graphed_steps"
check normal_float32 180 "$py" bench/benchmark.py --drawer fast_pixel --quality "$quality_normal" \
    --device "$device" --precision float32 "${short[@]}"
check vqgan_normal 240 "$py" bench/benchmark.py --drawer vqgan --quality "$quality_normal" \
    --device "$device" "${short[@]}"
# vqgan at best in float16, what auto computes in on a T4 (no bfloat16), where vqgan's decoder stays float32.
check vqgan_best_float16 240 "$py" bench/benchmark.py --drawer vqgan --quality "$quality_best" \
    --device "$device" "${half[@]}" "${short[@]}"
check sync 120 "$py" bench/sync_check.py
check sync_graphs 120 "$py" bench/sync_check.py --drawers fast_pixel --cuda_graphs
check profile_normal 240 "$py" bench/step_profile.py --quality "$quality_normal" --device "$device" \
    --steps 3 --warmup 2 --rows 30
# The levers for the 10 s goal: one pass eager, with bfloat16-stored weights, and replayed as a CUDA graph.
check graph_vit_b16 180 "$py" bench/cuda_graph_pass.py --model ViT-B/16 --cuts 30
check graph_vit_b32 180 "$py" bench/cuda_graph_pass.py --model ViT-B/32 --cuts 30
# The command line and pixray batch on the device (shapes-demo, seconds): paths only a GPU takes
# (batch's workers each given their GPU, cuda_device, cudnn_determinism), which CPU tests cannot reach.
# No steps/ video: a GPU image carries no imageio-ffmpeg, and its wheel (with ffmpeg inside) would take
# the .whl folder past what a lease carries; nothing of the video is the GPU's.
pixray=("$py" -c "import sys; from pixray.cli import main; sys.exit(main())")
check cli_on_device 120 "${pixray[@]}" --prompts "a red circle" --drawer fast_pixel \
    --clip_models shapes-demo --size 64 64 --iterations 20 --cuda_device cuda:0 --cudnn_determinism true \
    --save_intermediates false --outdir "$out/cli_run" --overwrite true --quiet
printf '%s\n' "settings: {drawer: pixel, clip_models: shapes-demo, size: [64, 64], iterations: 10," \
    "           save_intermediates: false}" \
    "sweep: {prompts: [a red circle, a blue square], seed: [1, 2]}" > "$out/jobs.yaml"
check batch_on_device 180 "${pixray[@]}" batch "$out/jobs.yaml" --outdir "$out/batch_run" --quiet
# Last, as it may not fit a short lease: the pass through torch.compile (a minute or so of compiling).
check compile_vit_b16 300 "$py" bench/cuda_graph_pass.py --model ViT-B/16 --cuts 30 --compile
echo "== done: outputs in $out"
