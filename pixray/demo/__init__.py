"""The shapes world: a tiny synthetic world, and CLIP models trained on it to run pixray offline."""
