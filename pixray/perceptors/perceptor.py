"""One CLIP model as the engine sees it: text and images in, unit-length embeddings out."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import open_clip
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import ModifiedResNet
from open_clip.transformer import VisionTransformer
from torch import nn

from ..options import shown
from .activation import use_lean_activations
from .attention import use_fast_attention
from .batch_norm_folding import fold_batch_norms
from .class_token_block import use_class_token_block
from .class_token_pool import use_class_token_pool
from .fused_bias_linear import use_fused_bias_linears
from .fused_convolution import use_fused_convolutions
from .patch_embedding import use_patch_matmul
from .weight_precision import store_matmul_weights

log = logging.getLogger(__name__)

# CLIP's image normalisation (OpenAI's training statistics).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class Perceptor(nn.Module):
    """A frozen CLIP model with its normalisation and tokenizer inside.

    ``encode_image`` takes (B,3,R,R) in [0,1] with R = :attr:`input_resolution`; both encoders
    return (N,D) L2-normalised embeddings. ``fast`` switches the transformer blocks' attention to
    :class:`~pixray.perceptors.attention.FastSelfAttention` and QuickGELU to
    :class:`~pixray.perceptors.activation.LeanQuickGELU`, linear layers to
    :class:`~pixray.perceptors.fused_bias_linear.FusedBiasLinear`, a class-token-pooling ViT's last block to
    :class:`~pixray.perceptors.class_token_block.ClassTokenBlock`, a ResNet's attention pool to
    :class:`~pixray.perceptors.class_token_pool.ClassTokenPool`, a ViT's patch embedding to
    :class:`~pixray.perceptors.patch_embedding.PatchMatmulConv`, a ResNet's batch norms into its
    convolutions (:func:`~pixray.perceptors.batch_norm_folding.fold_batch_norms`; its state dict then
    holds convolution biases instead of them) and their ReLUs and residual adds into oneDNN's
    convolutions (:func:`~pixray.perceptors.fused_convolution.use_fused_convolutions`), and a ResNet
    tower to channels-last memory (same
    weights and results, faster and smaller with gradients); ``fast=False`` keeps
    open_clip's modules as they are (the benchmark's baseline). ``mean``/``std``: the image
    normalisation the model was trained with; ``tokenizer(texts, context_length)``: its tokenizer
    (default: OpenAI's BPE, open_clip's ``tokenize``).
    """

    def __init__(self, name: str, model: open_clip.CLIP, fast: bool = True,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 tokenizer: Callable[[list[str], int], torch.Tensor] | None = None) -> None:
        super().__init__()
        self.name = name
        self.model = model.eval().requires_grad_(False)
        # ResNet towers convolve faster on channels-last tensors (RN50, 30 cutouts, 2 AVX2 cores:
        # see docs/performance.md); a ViT's one patch convolution gains nothing.
        self.channels_last = fast and isinstance(model.visual, ModifiedResNet)
        self.class_token_block = False
        self.class_token_pool = False
        self.folded_batch_norms = 0
        self.fused_convolutions = 0  # stem and bottlenecks switched (computed by oneDNN as fuses() allows)
        self.fused_bias_linears = 0  # switched (computed by oneDNN as linear_fuses() allows)
        self.patch_matmul = False
        self.weights_dtype = torch.float32  # of the matmul weights: see store_weights_in
        if fast:
            use_fast_attention(self.model)
            use_lean_activations(self.model)
            self.fused_bias_linears = use_fused_bias_linears(self.model)
            self.class_token_block = use_class_token_block(self.model.visual)
            self.class_token_pool = use_class_token_pool(self.model.visual)
            self.folded_batch_norms = fold_batch_norms(self.model.visual)
            self.fused_convolutions = use_fused_convolutions(self.model.visual)
            self.patch_matmul = use_patch_matmul(self.model.visual)
        if self.channels_last:
            self.model.visual.to(memory_format=torch.channels_last)
        size = model.visual.image_size
        self.input_resolution = int(size[0] if isinstance(size, (tuple, list)) else size)
        self.context_length = int(model.context_length)
        self.embed_width = int(model.visual.output_dim)  # D of encode_image's (N,D)
        # Activation rows one image costs: a ViT's tokens (its patches and the class token); a
        # ResNet's pixels / 16² (224² -> 196, as many as ViT-B/16's 197 tokens).
        if isinstance(model.visual, VisionTransformer):
            rows, cols = model.visual.grid_size
            self.positions = int(rows) * int(cols) + 1
        else:
            self.positions = self.input_resolution ** 2 // 256
        self.tokenizer = tokenizer or open_clip.tokenize
        self.register_buffer("mean", torch.tensor(tuple(mean)).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(tuple(std)).view(1, 3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def train(self, mode: bool = True) -> Perceptor:
        # Always eval: dropout or batch-norm updates would make guidance noisy and runs unrepeatable.
        return super().train(False)

    def store_weights_in(self, dtype: torch.dtype) -> Perceptor:
        """Keep the matmul and convolution weights in ``dtype`` (bfloat16 or float16) from now on, for
        passes computing in it (:func:`~pixray.perceptors.weight_precision.store_matmul_weights`: the
        values autocast's casts give, half the memory, no cast per call); returns the perceptor. Once
        only: float32 results need a perceptor loaded afresh (the model cache keeps one per precision)."""
        if dtype != self.weights_dtype:
            if self.weights_dtype != torch.float32:
                raise ValueError(f"{self.name}'s weights are already {self.weights_dtype}; "
                                 f"load it again for {dtype}")
            store_matmul_weights(self.model, dtype)
            self.weights_dtype = dtype
        return self

    def _precision(self) -> contextlib.AbstractContextManager:
        # Weights stored in half precision need autocast; callers outside one get it here.
        if self.weights_dtype == torch.float32 or torch.is_autocast_enabled(self.device.type):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, self.weights_dtype)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """(N,D) unit embeddings of ``texts``; a text longer than the model reads is cut to fit, as
        its tokenizer does, and said in a warning (Pixray's stopped with an error)."""
        tokens = self.tokenizer(list(texts), self.context_length)
        self._warn_of_cut_texts(texts)
        tokens = tokens.to(self.device)
        with self._precision():
            return F.normalize(self.model.encode_text(tokens).float(), dim=-1)

    def _warn_of_cut_texts(self, texts: Sequence[str]) -> None:
        # Tokenized with room to spare, a text that fits leaves the positions past the context empty.
        roomy = self.tokenizer(list(texts), 4 * self.context_length)
        for text, row in zip(texts, roomy, strict=True):
            if row[self.context_length:].any():
                count = int(row.count_nonzero())
                log.warning("the prompt %s is %s tokens long, more than %s reads (%d, its start and end "
                            "marks included): the words past that are not seen; shorten it, or split it "
                            "into '|'-separated prompts", shown(text, 60), count if count < roomy.shape[1]
                            else f"over {count}", self.name, self.context_length)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B,D) unit embeddings of ``images``, (B,3,R,R) in [0,1]."""
        normalised = (images - self.mean) / self.std
        if self.channels_last:
            normalised = normalised.contiguous(memory_format=torch.channels_last)
        with self._precision():
            return F.normalize(self.model.encode_image(normalised).float(), dim=-1)
