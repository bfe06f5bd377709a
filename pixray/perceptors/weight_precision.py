"""A frozen CLIP's matmul weights stored in the precision its passes compute in.

Under ``torch.autocast`` every linear layer, attention projection and convolution casts its float32
weight to bfloat16 on each call (autocast reuses casts only of weights that require gradients, and a
perceptor's are frozen): a pass over all the weights per forward pass, and the float32 copies held
as well. :func:`store_matmul_weights` converts those parameters once, to exactly the values the casts
produce, so the passes compute the same numbers in less time and the model takes half the memory.
Everything autocast leaves in float32 (layer and batch norms, embeddings, the logit scale) stays so.

While converting, it also folds QuickGELU's slope into the MLPs around it
(:func:`~pixray.perceptors.activation.fold_quick_gelu`): rounding the scaled weights once is as
exact as rounding the weights, and it saves two passes over each MLP's hidden activations.
"""

from __future__ import annotations

import torch
from torch import nn

from .activation import fold_quick_gelu

# Matrices that open_clip's towers multiply by with ``@`` (autocast casts them like a linear's).
_PROJECTIONS = ("proj", "text_projection")


def _matmul_parameters(model: nn.Module) -> list[nn.Parameter]:
    found: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            names = ("weight", "bias")
        elif isinstance(module, nn.MultiheadAttention):
            names = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight")
        else:
            names = _PROJECTIONS
        params = (getattr(module, name, None) for name in names)
        found += [param for param in params if isinstance(param, nn.Parameter) and param.is_floating_point()]
    return found


def store_matmul_weights(model: nn.Module, dtype: torch.dtype) -> int:
    """Store ``model``'s matmul and convolution weights in ``dtype`` in place (folding QuickGELU's
    slope first when ``dtype`` is not float32); returns how many parameters were converted."""
    if dtype == torch.float32:
        return 0
    fold_quick_gelu(model)
    params = _matmul_parameters(model)
    for param in params:
        param.data = param.data.to(dtype)
    return len(params)
