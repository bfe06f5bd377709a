"""Whether a frozen layer and what follows it (its bias, a ReLU, a residual add) run as one oneDNN primitive.

:mod:`~pixray.perceptors.fused_bias_linear` and :mod:`~pixray.perceptors.fused_convolution` compute such
layers with oneDNN's post-ops on the CPU, and their own backward; both take a layer only where
:func:`fused_dtype` names the dtype it computes in.
"""

from __future__ import annotations

import torch

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


def fused_dtype(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.dtype | None:
    """The dtype a layer with ``weight`` and ``bias`` computes ``x`` in (CPU autocast's, or else ``x``'s)
    when that is the weight's and the bias's, both are frozen and :func:`fuses` holds for it; None when
    the layer is torch's to compute."""
    if bias is None or weight.requires_grad or bias.requires_grad:
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype != weight.dtype or bias.dtype != dtype or not fuses(weight.device, dtype):
        return None
    return dtype
