"""Whether a frozen layer and what follows it (its bias, a ReLU, a residual add) run as one oneDNN primitive.

:mod:`~pixray.perceptors.fused_bias_linear` and :mod:`~pixray.perceptors.fused_convolution` compute such
layers with oneDNN's post-ops on the CPU, and their own backward; a convolution where :func:`fuses` holds
for the dtype it computes in, a linear layer where :func:`linear_fuses` does.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..runtime import cpu_vendor

#: The dtypes the fused primitives compute in. Not float32: a ResNet pass on AVX2 kernels (oneDNN and MKL
#: limited to AVX2) was slower and larger fused than with torch's modules (docs/performance.md has the
#: figures); the tests widen it to check the fused arithmetic in float32.
FUSED_DTYPES: tuple[torch.dtype, ...] = (torch.bfloat16,)


def fuses(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether frozen layers with weights of ``dtype`` on ``device`` take oneDNN's fused primitives: a
    dtype of :data:`FUSED_DTYPES` on a CPU with oneDNN (for bfloat16, with its bfloat16 kernels: AVX512
    BW/VL/DQ or AVX-NE-CONVERT; elsewhere torch's own kernels serve the layers)."""
    if device.type != "cpu" or dtype not in FUSED_DTYPES or not torch.backends.mkldnn.is_available():
        return False
    return dtype != torch.bfloat16 or torch.ops.mkldnn._is_mkldnn_bf16_supported()


def onednn_multiplies_float32(device: torch.device) -> bool:
    """Whether float32 products on ``device`` run faster in oneDNN than in torch's own ``addmm`` and
    ``mm``, which on an x86 CPU are MKL's: on a CPU with AVX-512 that is not Intel's (AMD's Zen 4 and
    later), where MKL takes none of its AVX-512 kernels and oneDNN does. Not where torch's kernels are
    held to AVX2 (``ATEN_CPU_CAPABILITY``), nor on AVX2 CPUs, where oneDNN's AVX2 kernels were not faster
    than MKL's inside a step, nor on Intel's, where MKL uses AVX-512 itself (docs/performance.md)."""
    return (device.type == "cpu" and torch.backends.mkldnn.is_available()
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512")
            and cpu_vendor() not in ("", "GenuineIntel"))


def linear_fuses(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether frozen linear layers with weights of ``dtype`` on ``device`` run as oneDNN's matmul with
    their bias inside: where :func:`fuses` holds, and in float32 where
    :func:`onednn_multiplies_float32` does."""
    return fuses(device, dtype) or (dtype == torch.float32 and onednn_multiplies_float32(device))


def fused_dtype(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                allowed: Callable[[torch.device, torch.dtype], bool] = fuses) -> torch.dtype | None:
    """The dtype a layer with ``weight`` and ``bias`` computes ``x`` in (CPU autocast's, or else ``x``'s)
    when that is the weight's and the bias's, both are frozen and ``allowed`` (:func:`fuses`, or
    :func:`linear_fuses` for a linear layer) holds for it; None when the layer is torch's to compute."""
    if bias is None or weight.requires_grad or bias.requires_grad:
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype != weight.dtype or bias.dtype != dtype or not allowed(weight.device, dtype):
        return None
    return dtype
