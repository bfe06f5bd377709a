"""Temporary folders for the benchmarks' random weight files, removed when the script ends.

A vqgan benchmark writes a random VQGAN checkpoint and the first-frame benchmark random CLIP
checkpoints, hundreds of megabytes a run; left in the temporary directory, every run added them there.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path


def scratch_directory(prefix: str) -> Path:
    """A new folder under the temporary directory, removed with what it holds when the script exits:
    normally, on an exception or Ctrl-C, or on the SIGTERM that ``timeout`` (bench/gpu_checks.sh) sends.
    Not on SIGKILL."""
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    _exit_on_sigterm()
    return directory


def _exit_on_sigterm() -> None:
    """SIGTERM as ``sys.exit(143)``, so ``finally`` blocks (a server's stop) and ``atexit`` run. Only
    where SIGTERM still has its default action, which kills without either; only the main thread may
    set a handler."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
