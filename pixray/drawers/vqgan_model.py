"""A VQGAN autoencoder from taming-transformers' torch modules, loaded from config YAML + Lightning .ckpt.

Only ``taming.modules`` is imported (Encoder, Decoder, quantisers): ``taming.models`` needs a
pytorch-lightning API that no longer exists. Three checkpoint kinds load: ``VQModel``,
``GumbelVQ``, and the first stage of a ``Net2NetTransformer`` (coco, faceshq, sflckr).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..frozen_convolution import use_frozen_convolutions
from ..weights import CheckpointError
from ..weights.torch_file import read_torch_file
from ..weights.without_initialisation import built_without_initialisation
from . import lean_decoder

VQMODEL = "taming.models.vqgan.VQModel"
GUMBEL = "taming.models.vqgan.GumbelVQ"
NET2NET = "taming.models.cond_transformer.Net2NetTransformer"


class VQGAN(nn.Module):
    """Encoder -> quant_conv -> codebook -> post_quant_conv -> decoder, with the state-dict key
    layout of taming's VQModel/GumbelVQ. Frozen and in eval mode.

    Latents are (B, embed_dim, H/f, W/f); images (B,3,H,W) in [-1,1] as taming trains them.
    """

    def __init__(self, params: Mapping[str, Any], gumbel: bool) -> None:
        super().__init__()
        from taming.modules.diffusionmodules.model import Decoder, Encoder
        from taming.modules.vqvae.quantize import GumbelQuantize, VectorQuantizer2

        dd = dict(params["ddconfig"])
        n_embed, embed_dim = int(params["n_embed"]), int(params["embed_dim"])
        self.gumbel = gumbel
        self.encoder = Encoder(**dd)
        with contextlib.redirect_stdout(io.StringIO()):  # taming's Decoder prints its latent shape
            self.decoder = Decoder(**dd)
        if gumbel:
            self.quantize = GumbelQuantize(dd["z_channels"], embed_dim, n_embed=n_embed)
        else:
            self.quantize = VectorQuantizer2(n_embed, embed_dim, beta=0.25)
        self.quant_conv = nn.Conv2d(dd["z_channels"], embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(embed_dim, dd["z_channels"], 1)
        self.factor = 2 ** (len(dd["ch_mult"]) - 1)
        self.eval().requires_grad_(False)
        # A run's gradient flows through the decoder to the latent: its convolutions need keep no input.
        use_frozen_convolutions(self.decoder)
        use_frozen_convolutions(self.post_quant_conv)

    @property
    def codebook(self) -> torch.Tensor:
        """(n_embed, embed_dim) code vectors."""
        return (self.quantize.embed if self.gumbel else self.quantize.embedding).weight

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> quantised latent (B, embed_dim, H/f, W/f)."""
        h = self.quant_conv(self.encoder(image))
        if self.gumbel:  # the most likely code, without Gumbel sampling noise
            return self.codebook[self.quantize.proj(h).argmax(1)].movedim(-1, 1)
        return quantise(h, self.codebook)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """(B, embed_dim, h, w) -> image (B,3,h*f,w*f), roughly in [-1,1]: taming's decoder, run by
        :func:`~pixray.drawers.lean_decoder.decode` (the same output, less kept for the backward)."""
        return lean_decoder.decode(self.decoder, self.post_quant_conv(latent))


def quantise(latent: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Each latent vector replaced by its nearest code, with a straight-through gradient.

    latent (B,D,h,w), codebook (N,D) -> (B,D,h,w); the backward pass is the identity. Always in
    float32, inside an autocast too: distances rounded to bfloat16 would pick other codes.
    """
    with torch.autocast(latent.device.type, enabled=False):
        flat = latent.float().movedim(1, -1)
        codebook = codebook.float()
        distance = (flat.pow(2).sum(-1, keepdim=True) + codebook.pow(2).sum(1)
                    - 2 * flat @ codebook.T)
        nearest = codebook[distance.argmin(-1)].movedim(-1, 1)
        return latent + (nearest - latent).detach()


def read_config(path: Path) -> tuple[str, dict[str, Any], str]:
    """(VQ model target, its params, its key prefix in the checkpoint) from a taming config YAML."""
    prefix = ""
    try:
        config = yaml.safe_load(path.read_text())
        model = config["model"]
        target, params = model["target"], model["params"]
        if target == NET2NET:  # a transformer whose first stage is the VQGAN
            target, params = params["first_stage_config"]["target"], params["first_stage_config"]["params"]
            prefix = "first_stage_model."
        missing = [key for key in ("ddconfig", "n_embed", "embed_dim") if key not in params]
        if missing:
            raise KeyError(f"model params lack {', '.join(missing)}")
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{str(path)!r} is not a taming VQGAN config (model.target, model.params "
                              f"with ddconfig, n_embed, embed_dim): {exc!r}") from exc
    if target not in (VQMODEL, GUMBEL):
        raise CheckpointError(f"{str(path)!r}: model.target {target!r} is not supported; expected "
                              f"{VQMODEL}, {GUMBEL} or {NET2NET}")
    return target, params, prefix


def read_state_dict(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix`` in a Lightning checkpoint's ``state_dict`` (prefix stripped), mapped
    from the file where its format allows (:func:`~pixray.weights.torch_file.read_torch_file`): copy them."""
    checkpoint = read_torch_file(path, mapped=True)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{str(path)!r} is not a Lightning checkpoint (no 'state_dict')")
    return {k[len(prefix):]: v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}


def load_vqgan(config_path: Path, checkpoint_path: Path) -> VQGAN:
    """Build the VQGAN a taming config describes and load its weights (loss.* keys are ignored)."""
    target, params, prefix = read_config(config_path)
    # Every weight is loaded below (a missing one is an error): none need drawing at random first.
    model = built_without_initialisation(lambda: VQGAN(params, gumbel=target == GUMBEL))
    state = read_state_dict(checkpoint_path, prefix)
    wanted = model.state_dict().keys()
    missing = sorted(set(wanted) - set(state))
    if missing:
        raise CheckpointError(f"VQGAN checkpoint {str(checkpoint_path)!r} does not match config "
                              f"{str(config_path)!r}: missing {', '.join(missing[:5])}"
                              f"{' ...' if len(missing) > 5 else ''}")
    try:
        # Copied from the mapped file (and into the network's precision): only the network's tensors
        # are read, and the file can change afterwards without changing or faulting the network.
        model.load_state_dict({k: state[k] for k in wanted})
    except RuntimeError as exc:
        raise CheckpointError(f"VQGAN checkpoint {str(checkpoint_path)!r} does not match config "
                              f"{str(config_path)!r}: {exc}") from exc
    return model
