"""CLIP models that judge images against prompts."""

from .catalog import CLIP_MODELS, checkpoint_path
from .checkpoint import CheckpointError, build_clip, load_clip_checkpoint, openai_state_dict
from .perceptor import Perceptor

__all__ = ["CLIP_MODELS", "CheckpointError", "Perceptor", "build_clip", "checkpoint_path",
           "load_clip_checkpoint", "openai_state_dict"]
