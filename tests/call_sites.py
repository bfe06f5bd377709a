"""Which line called into torch: for the harnesses that find or count operations (tests/host_syncs.py,
bench/launch_count.py)."""

from __future__ import annotations

import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def calling_frame(skip: Path, give_up_in: str | None = None) -> tuple[str, traceback.FrameSummary] | None:
    """The innermost frame on the stack outside torch, this file and the file ``skip``, with its file named
    from the installed packages' folder or the checkout's root (else by its name); None if there is none,
    or if a frame of torch's sub-package ``give_up_in`` (such as "optim") comes before it."""
    skipped = {skip.resolve(), Path(__file__).resolve()}
    for frame in reversed(traceback.extract_stack()):
        path = Path(frame.filename).resolve()
        if "torch" in path.parts:
            if give_up_in is not None and give_up_in in path.parts:
                return None
            continue
        if path in skipped:
            continue
        parts = path.parts
        name = ("/".join(parts[parts.index("site-packages") + 1:]) if "site-packages" in parts
                else str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name)
        return name, frame
    return None
