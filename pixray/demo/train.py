"""Train a tiny CLIP on the shapes world from a seed (bit-for-bit repeatable on CPU), on CPU or CUDA.

The judge (plain training, about 5 minutes on 2 CPU cores):

    python -m pixray.demo.train --arch resnet --seed 1 --steps 1000 --out pixray/demo/weights/shapes-judge.pt

The two guides, trained on L2-adversarial views (``--radius``), which makes their gradients draw
shapes rather than texture (about 4 and 2 minutes on one H100; ``--device cpu`` runs the same
recipe, many times slower, see the README):

    python -m pixray.demo.train --arch vit --seed 0 --steps 6000 --radius 0.5 --attack_steps 2 \
        --device cuda --out pixray/demo/weights/shapes-demo.pt
    python -m pixray.demo.train --arch resnet --seed 2 --steps 3000 --radius 1.0 --attack_steps 2 \
        --device cuda --out pixray/demo/weights/shapes-demo-rn.pt

Each writes its accuracy beside the weights as JSON.

The model is an ordinary open_clip ``CLIP`` (QuickGELU, OpenAI layout) saved in half precision
with :func:`pixray.perceptors.openai_state_dict`, so it loads through the same code as OpenAI's
checkpoints. Training images are seen through the engine's own :class:`~pixray.cutouts.RotatedCutouts`
(the views the perceptor will judge during generation) plus Gaussian noise, which makes the
model's gradients smoother and more meaningful to follow.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIPTextCfg, CLIPVisionCfg

from ..cutouts import RotatedCutouts
from ..perceptors import Perceptor, load_clip_checkpoint, openai_state_dict
from ..perceptors.perceptor import CLIP_MEAN, CLIP_STD
from ..runtime import keep_freed_memory
from .evaluate import to_tensor, zero_shot_accuracy
from .world import SHAPES, all_scenes, random_scenes

log = logging.getLogger(__name__)

IMAGE_SIZE = 64
CONTEXT_LENGTH = 16  # the longest caption is 11 tokens with its start and end markers


def build_model(arch: str) -> open_clip.CLIP:
    """A tiny CLIP: ViT (4 layers, width 96, patch 8) or ResNet (1 block per stage, width 12)."""
    if arch == "vit":
        vision = CLIPVisionCfg(layers=4, width=96, patch_size=8, image_size=IMAGE_SIZE)
    elif arch == "resnet":
        vision = CLIPVisionCfg(layers=(1, 1, 1, 1), width=12, image_size=IMAGE_SIZE)
    else:
        raise ValueError(f"unknown arch {arch!r}; valid: vit, resnet")
    text = CLIPTextCfg(context_length=CONTEXT_LENGTH, vocab_size=49408, width=64, heads=1, layers=2)
    return open_clip.CLIP(64, vision, text, quick_gelu=True)


def augment(images: torch.Tensor, generator: torch.Generator, noise: float) -> torch.Tensor:
    """Engine-style cutout views of half the images (n,3,S,S), plus Gaussian noise of sd up to ``noise``."""
    n, device = images.shape[0], images.device
    cutouts = RotatedCutouts(IMAGE_SIZE, crop_area=(0.7, 1.0), hue=0.02, perspective=0.1, rotate_degrees=10)
    # Zoom-out views extend the scene's own border instead of showing the canvas as a square on
    # grey: a frame in 40 % of the views would hide which shape is drawn.
    views = cutouts(images, n, generator, fill="border")
    # Half the batch is seen plainly: with every view warped, shapes are learnt several times slower.
    plain = (torch.arange(n, device=device) % 2 == 0)[:, None, None, None]
    views = torch.where(plain, images, views)
    sd = torch.rand(n, 1, 1, 1, generator=generator, device=device) * noise
    return views + sd * torch.randn(views.shape, generator=generator, device=device)


def _loss(model: open_clip.CLIP, probe: torch.nn.Module, text_embeds: torch.Tensor,
          targets: tuple[torch.Tensor, torch.Tensor], norm: tuple[torch.Tensor, torch.Tensor],
          views: torch.Tensor) -> torch.Tensor:
    """CLIP's contrastive loss with every caption of the world as a candidate, plus the shape probe's."""
    features = model.encode_image((views - norm[0]) / norm[1])
    logits = model.logit_scale.exp().clamp(max=100) * F.normalize(features, dim=-1) @ text_embeds.T
    return F.cross_entropy(logits, targets[0]) + F.cross_entropy(probe(features), targets[1])


def adversarial(views: torch.Tensor, loss_of: Callable[[torch.Tensor], torch.Tensor], radius: float,
                steps: int) -> torch.Tensor:
    """``views`` moved within an L2 ball of ``radius`` (per image, [0,1] pixel units) to raise the loss.

    Training on such views makes the model robust, and robust models have perceptually aligned
    gradients: following them draws recognisable shapes instead of adversarial texture.
    """
    delta = torch.zeros_like(views, requires_grad=True)
    for _ in range(steps):
        grad, = torch.autograd.grad(loss_of(views + delta), delta)
        norm = grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1)
        delta = delta.detach() + 2.5 * radius / steps * grad / norm
        scale = (radius / delta.flatten(1).norm(dim=1).clamp(min=1e-12)).clamp(max=1).view(-1, 1, 1, 1)
        delta = (delta * scale).requires_grad_(True)
    return (views + delta).detach()


def train(arch: str, seed: int, steps: int, batch: int, pool: int, noise: float, radius: float = 0.0,
          attack_steps: int = 1, init: Path | None = None, lr: float = 2e-3,
          device: str = "cpu") -> open_clip.CLIP:
    torch.manual_seed(seed)
    generator = torch.Generator(device).manual_seed(seed)
    model = build_model(arch)
    if init is not None:
        model.load_state_dict(load_clip_checkpoint(init).float().state_dict())
    model.to(device)
    images, labels = random_scenes(pool, seed, size=IMAGE_SIZE)
    images, labels = to_tensor(images).to(device), torch.from_numpy(labels).to(device)
    scenes = all_scenes()
    tokens = open_clip.tokenize([s.caption for s in scenes], context_length=CONTEXT_LENGTH).to(device)
    shape_of = torch.tensor([SHAPES.index(s.shape) for s in scenes], device=device)
    # Shapes start out invisible to both towers (every shape's caption embeds alike, so the
    # contrastive gradient cannot separate them: a symmetric saddle). A shape probe on the image
    # embedding, dropped after training, breaks the symmetry; the contrastive loss does the rest.
    probe = torch.nn.Linear(model.visual.output_dim, len(SHAPES), device=device)
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    optimiser = torch.optim.AdamW([*model.parameters(), *probe.parameters()], lr=lr, weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    start = time.time()
    for step in range(steps):
        pick = torch.randint(0, pool, (batch,), generator=generator, device=device)
        views = augment(images[pick], generator, noise)
        text_embeds = F.normalize(model.encode_text(tokens), dim=-1)
        targets = labels[pick], shape_of[labels[pick]]
        if radius > 0:
            frozen_text = partial(_loss, model, probe, text_embeds.detach(), targets, (mean, std))
            views = adversarial(views, frozen_text, radius, attack_steps)
        loss = _loss(model, probe, text_embeds, targets, (mean, std), views)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == steps - 1:
            log.info("step %d/%d loss %.4f (%.0f s)", step, steps, loss.item(), time.time() - start)
    return model.cpu().eval()


def main() -> None:
    parser = argparse.ArgumentParser(description="Train a tiny shapes-world CLIP.")
    parser.add_argument("--arch", choices=["vit", "resnet"], default="vit")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--pool", type=int, default=16384, help="distinct training scenes")
    parser.add_argument("--noise", type=float, default=0.15, help="largest added noise sd")
    parser.add_argument("--radius", type=float, default=0.0,
                        help="L2 radius of adversarial training views ([0,1] pixels; 0: none)")
    parser.add_argument("--attack_steps", type=int, default=1)
    parser.add_argument("--init", type=Path, default=None, help="start from this checkpoint (fine-tuning)")
    parser.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (bit-for-bit repeatable) or cuda")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    model = train(args.arch, args.seed, args.steps, args.batch, args.pool, args.noise, args.radius,
                  args.attack_steps, args.init, args.lr, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(openai_state_dict(model, half=True), args.out)
    # Measured on the saved (half-precision) file, through the loader everything else uses.
    accuracy = zero_shot_accuracy(Perceptor(args.out.stem, load_clip_checkpoint(args.out)))
    record = {"arch": args.arch, "seed": args.seed, "steps": args.steps, "batch": args.batch,
              "pool": args.pool, "noise": args.noise, "radius": args.radius,
              "attack_steps": args.attack_steps, "lr": args.lr, "device": args.device,
              "init": str(args.init) if args.init else None, "eval_scenes": 448, "eval_seed": 12345,
              **accuracy.__dict__}
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    log.info("saved %s (%.1f MB): %s", args.out, args.out.stat().st_size / 1e6, accuracy)


if __name__ == "__main__":
    main()
