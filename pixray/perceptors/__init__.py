"""CLIP models that judge images against prompts."""

from .catalog import CLIP_MODELS, check_clip_model, checkpoint_path
from .checkpoint import CheckpointError, build_clip, load_clip_checkpoint, openai_state_dict
from .perceptor import Perceptor
from .pretrained import load_pretrained_clip

__all__ = ["CLIP_MODELS", "CheckpointError", "Perceptor", "build_clip", "check_clip_model", "checkpoint_path",
           "load_clip_checkpoint", "load_pretrained_clip", "openai_state_dict"]
