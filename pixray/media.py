"""Frames and videos of a run forming: PNG frames written off the optimisation loop, then an mp4
(imageio-ffmpeg's bundled ffmpeg, no system ffmpeg) and optionally a GIF (Pillow) made from them.
"""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from .atomic_files import create_beside, write_atomically
from .init_images import to_pil

#: Pixray's frame rate rule: a video of about this many seconds, within MIN_FPS..MAX_FPS.
VIDEO_SECONDS = 14
MIN_FPS, MAX_FPS = 10, 60
#: The last frame is held this long, so the finished image can be seen.
HOLD_SECONDS = 1.0


def video_fps(frames: int) -> int:
    """Frames per second for a video of ``frames`` frames (Pixray's: frames / 14, clipped to 10..60)."""
    return int(min(max(frames / VIDEO_SECONDS, MIN_FPS), MAX_FPS))


@dataclass
class FrameSequence:
    """The frames of one video: PNGs ``frame_NNNN.png`` in ``directory`` (those this run wrote, in
    order), and where their mp4 goes (a GIF, when asked for, goes beside it)."""

    directory: Path
    video: Path
    frames: list[Path] = field(default_factory=list)

    def frame_path(self, index: int) -> Path:
        """Where the frame of step ``index`` goes (Pixray's names: frame_0000.png, ...)."""
        return self.directory / f"frame_{index:04d}.png"

    def add(self, index: int) -> None:
        """Count step ``index``'s frame (at :meth:`frame_path`) among the frames. Called once its image is
        handed to the writer: an interrupt (Ctrl-C lands anywhere) between the two then leaves out a
        frame never written, not one the video cannot read, which lost the interrupted run its video."""
        self.frames.append(self.frame_path(index))

    def make_videos(self, comment: str | None, gif: bool) -> list[Path]:
        """Encode the frames written: the GIF (when ``gif``) and the mp4, in that order."""
        made = []
        if gif:
            made.append(self.video.with_suffix(".gif"))
            write_gif(self.frames, made[-1])
        write_mp4(self.frames, self.video, comment)
        return [*made, self.video]


_Job = tuple[list[Path], torch.Tensor, PngImagePlugin.PngInfo | None]


class FrameWriter:
    """Writes PNG files on a background thread, in the order given, so the optimisation loop only
    hands over a copy of the image. At most ``max_pending`` images wait: a slow disk slows the run
    instead of filling memory. An error in the thread is raised by the next :meth:`submit`,
    :meth:`flush` or :meth:`close`.

    Ctrl-C (and SIGTERM, which the CLI turns into it) raises KeyboardInterrupt in the main thread
    wherever it is, and the interrupted run still flushes and closes its writer. So the submitting
    thread never holds a lock or condition that an exception could leave half-updated: the hand-over
    is one call into C (:class:`queue.SimpleQueue`); a full queue is waited out by comparing two
    counters, each written by one thread only, and a flush by a marker sent through the queue.
    (``queue.Queue``'s put is Python code; an interrupt inside its notify left the thread asleep with
    an image queued and ``close`` waiting for ever.)
    """

    POLL_SECONDS = 0.002  # how often a waiting flush or a full hand-over looks again

    def __init__(self, max_pending: int = 8) -> None:
        # (paths, image, metadata) per image, flush's marker, or None to stop the thread
        self._jobs: queue.SimpleQueue[_Job | queue.SimpleQueue[None] | None]
        self._jobs = queue.SimpleQueue()
        self._max_pending = max_pending
        self._submitted = 0  # images handed over (by the submitting thread)
        self._done = 0  # images written or dropped after an error (by the writer thread)
        self._error: BaseException | None = None
        # Our own flags, not Thread.is_alive: an exception raised inside is_alive (at its lock's
        # acquire) makes CPython 3.11 release a live thread's state lock and call it stopped.
        self._closed = False
        self._running = True  # until the thread's loop ends (set by the thread)
        threading.Thread(target=self._work, name="pixray-frames", daemon=True).start()

    def submit(self, paths: Sequence[Path], image: torch.Tensor,
               info: PngImagePlugin.PngInfo | None = None) -> None:
        """Queue ``image`` (1,C,H,W) in [0,1], C 3 or 4, to be written as a PNG to each of ``paths``.
        The image is copied here (the drawer may update the tensor it came from) without waiting
        for the device."""
        self._raise_error()
        if self._closed or not self._running:
            raise RuntimeError("the frame writer is closed")
        self._wait_until_pending(self._max_pending - 1)
        self._jobs.put((list(paths), image.detach().clone(), info))
        self._submitted += 1

    def flush(self) -> None:
        """Wait until every queued image is written; raise the first error the thread met.

        A marker goes through the queue behind the images and comes back when the thread reaches
        it, so this holds even if an interrupt kept submit from counting its image."""
        if self._running:
            reached: queue.SimpleQueue[None] = queue.SimpleQueue()
            self._jobs.put(reached)
            while self._running:
                with contextlib.suppress(queue.Empty):
                    reached.get(timeout=self.POLL_SECONDS * 50)
                    break
        self._raise_error()

    def close(self) -> None:
        """Write what is queued and stop the thread; raise the first error it met."""
        if not self._closed:
            self._jobs.put(None)  # before the flag: an interrupt between them leaves close repeatable
            self._closed = True
        while self._running:
            time.sleep(self.POLL_SECONDS)
        self._raise_error()

    def _wait_until_pending(self, most: int) -> None:
        """Until at most ``most`` handed-over images are unwritten (or the thread has stopped)."""
        while self._submitted - self._done > most and self._running:
            time.sleep(self.POLL_SECONDS)

    def _raise_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _work(self) -> None:
        try:
            self._write_jobs()
        finally:
            self._running = False

    def _write_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            if isinstance(job, queue.SimpleQueue):  # flush's marker
                job.put(None)
                continue
            try:
                if self._error is None:  # after an error, drain: the loop raises it at its next call
                    self._write(*job)
            except BaseException as exc:  # handed to the loop's thread
                self._error = exc
            finally:
                self._done += 1

    @staticmethod
    def _write(paths: list[Path], image: torch.Tensor, info: PngImagePlugin.PngInfo | None) -> None:
        encoded = io.BytesIO()
        to_pil(image).save(encoded, format="PNG", pnginfo=info)  # once, however many files
        for path in paths:
            write_atomically(path, lambda f: f.write(encoded.getbuffer()))


def _rgb_frames(paths: Sequence[Path]) -> Iterator[np.ndarray]:
    """Each frame as an (H,W,3) uint8 array with even sides (yuv420p needs them; an odd side gets
    its last row or column repeated)."""
    for path in paths:
        with Image.open(path) as image:
            array = np.asarray(image.convert("RGB"))
        height, width = array.shape[:2]
        yield np.pad(array, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def write_mp4(frames: Sequence[Path], path: Path, comment: str | None = None) -> None:
    """Encode the PNG ``frames`` (all one size) as an H.264 mp4 at ``path`` at :func:`video_fps`,
    the last frame held :data:`HOLD_SECONDS`; ``comment`` (the prompts) goes in its metadata."""
    import imageio_ffmpeg

    if not frames:
        raise ValueError("no frames to encode")
    fps = video_fps(len(frames))
    hold = [frames[-1]] * round(fps * HOLD_SECONDS)
    arrays = _rgb_frames([*frames, *hold])
    first = next(arrays)
    metadata = ["-metadata", f"comment={comment}"] if comment else []
    fd, tmp = create_beside(path.with_suffix(".mp4"))
    os.close(fd)
    try:
        writer = imageio_ffmpeg.write_frames(
            str(tmp), (first.shape[1], first.shape[0]), fps=fps, codec="libx264", quality=None,
            macro_block_size=1, ffmpeg_log_level="error",
            output_params=["-crf", "17", "-preset", "slow", "-movflags", "+faststart", *metadata])
        writer.send(None)  # start ffmpeg
        for array in (first, *arrays):
            writer.send(np.ascontiguousarray(array))
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_gif(frames: Sequence[Path], path: Path, fps: int | None = None, hold: float = HOLD_SECONDS) -> None:
    """The PNG ``frames`` as a looping GIF at ``path``: at ``fps`` (default: timed as
    :func:`write_mp4`'s video), the last frame held ``hold`` seconds longer."""
    if not frames:
        raise ValueError("no frames to encode")
    fps = fps or video_fps(len(frames))
    images = [Image.fromarray(array) for array in _rgb_frames(frames)]
    durations = [round(1000 / fps)] * len(images)
    durations[-1] += round(1000 * hold)
    write_atomically(path, lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:],
                                                    duration=durations, loop=0))
