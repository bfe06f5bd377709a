import datetime as dt
import os
from pathlib import Path

import pytest
import torch

from pixray.init_images import to_pil
from pixray.output import png_metadata, read_png_metadata, resolve_outdir, save_png


def test_png_metadata_round_trip(tmp_path: Path):
    settings = {"prompts": "a red circle:2", "iterations": 5, "pixel_size": [8, 6]}
    path = tmp_path / "x.png"
    save_png(to_pil(torch.rand(1, 3, 6, 8)), path, png_metadata(settings, seed=42, iteration=5))
    meta = read_png_metadata(path)
    assert meta == {"settings": settings, "seed": 42, "iteration": 5}
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]  # no temporary file left behind


def test_outdir_date_and_sequence(tmp_path: Path):
    day = dt.date(2026, 11, 22)
    assert resolve_outdir(str(tmp_path / "%DATE%"), day) == tmp_path / "20261122"
    first = resolve_outdir(str(tmp_path / "%DATE%_%SEQ%"), day)
    assert first == tmp_path / "20261122_01"
    first.mkdir()
    assert resolve_outdir(str(tmp_path / "%DATE%_%SEQ%"), day) == tmp_path / "20261122_02"
    for seq in range(2, 100):  # Pixray's two digits are a minimum
        (tmp_path / f"20261122_{seq:02d}").mkdir()
    assert resolve_outdir(str(tmp_path / "%DATE%_%SEQ%"), day) == tmp_path / "20261122_100"


def test_claiming_a_seq_outdir_creates_it_and_moves_on_when_another_run_has(tmp_path: Path):
    """`pixray batch --outdir b%SEQ%` (and each run) claims its directory: two batches resolving
    the same number get one each."""
    from pixray.output import claim_outdir

    pattern = str(tmp_path / "deep" / "b%SEQ%")
    seen = resolve_outdir(pattern)
    assert claim_outdir(pattern, seen) == (tmp_path / "deep" / "b01", [tmp_path / "deep" / "b01",
                                                                         tmp_path / "deep"])
    assert claim_outdir(pattern, seen) == (tmp_path / "deep" / "b02", [tmp_path / "deep" / "b02"])
    assert (tmp_path / "deep" / "b02").is_dir()


@pytest.fixture
def run(small_settings, tiny_perceptor):
    import pixray

    def make(**changes):
        return pixray.generate({**small_settings, **changes}, perceptors=[tiny_perceptor])
    return make


def test_writer_saves_on_cadence_with_metadata(run, tmp_path: Path):
    from pixray.output import OutputWriter

    r = run(iterations=5, save_every=2, outdir=str(tmp_path / "o"))
    writer = OutputWriter(r.settings)
    writer.start(r)
    written = [s.index for s in r if writer.wants(s) and writer.write(s)]
    assert written == [0, 2, 4, 5]
    meta = read_png_metadata(tmp_path / "o" / "output.png")
    assert meta["seed"] == 1 and meta["iteration"] == 5
    assert meta["settings"]["iterations"] == 5 and meta["settings"]["prompts"] == "a red circle"
    assert "aspect" not in meta["settings"]  # only non-default settings are recorded
    assert (tmp_path / "o" / "settings.yaml").read_text().count("seed: 1") == 1


def test_writer_never_overwrites_existing_files(run, tmp_path: Path):
    from pixray.output import OutputWriter
    from pixray.settings import SettingsError

    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "output.png").write_bytes(b"precious")
    with pytest.raises(SettingsError, match="already holds files"):
        OutputWriter(run(outdir=str(tmp_path / "o")).settings)
    assert (tmp_path / "o" / "output.png").read_bytes() == b"precious"
    OutputWriter(run(outdir=str(tmp_path / "o"), overwrite=True).settings)
    with pytest.raises(SettingsError, match=r"'output'.*inside outdir \(not absolute, no '\.\.'\)"):
        OutputWriter(run(output="../escape.png").settings)


def test_an_outdir_that_cannot_be_made_names_where_and_why(run, tmp_path: Path, monkeypatch):
    from pixray.output import OutputWriter
    from pixray.settings import SettingsError

    (tmp_path / "notes").write_text("a file where a folder would go")
    with pytest.raises(SettingsError) as refused:
        OutputWriter(run(outdir=str(tmp_path / "notes" / "renders")).settings)
    assert str(refused.value) == (f"setting 'outdir': cannot make {str(tmp_path / 'notes' / 'renders')!r}: "
                                  f"{str(tmp_path / 'notes')!r} is a file, not a directory; choose another "
                                  "outdir")
    # A relative outdir under a folder this user may not write (the default's '.'): its full path too.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(SettingsError) as refused:
        OutputWriter(run(outdir="renders/%SEQ%").settings)
    assert str(refused.value) == ("setting 'outdir': cannot make 'renders/01': "
                                  f"'.' ({tmp_path.resolve()}) is not writable; choose another outdir")


def test_runs_started_side_by_side_never_share_an_outdir(run, tmp_path: Path):
    """Writers made before any of them starts (several `pixray` commands launched together) all
    resolve the default %SEQ% outdir to the same unused number: each claims one of its own when it
    starts, so none replaces another's files; two given the same outdir by name: the second is
    refused, the first's files kept."""
    from pixray.output import OutputWriter
    from pixray.settings import SettingsError

    runs = [run(iterations=1, prompts=f"run {i}", outdir=str(tmp_path / "%SEQ%")) for i in range(3)]
    writers = [OutputWriter(r.settings) for r in runs]
    assert {w.outdir for w in writers} == {tmp_path / "01"}
    for writer, r in zip(writers, runs, strict=True):
        writer.save_run(r)
    assert [w.path for w in writers] == [tmp_path / f"0{i}" / "output.png" for i in (1, 2, 3)]
    assert [read_png_metadata(w.path)["settings"]["prompts"] for w in writers] == ["run 0", "run 1", "run 2"]

    first, second = (run(iterations=1, prompts=p, outdir=str(tmp_path / "named")) for p in ("a", "b"))
    writers = [OutputWriter(first.settings), OutputWriter(second.settings)]
    writers[0].save_run(first)
    with pytest.raises(SettingsError, match="already holds files"):
        writers[1].save_run(second)
    assert read_png_metadata(tmp_path / "named" / "output.png")["settings"]["prompts"] == "a"
    assert "prompts: a" in (tmp_path / "named" / "settings.yaml").read_text()


def test_a_writer_hands_over_each_shown_steps_picture_before_its_pass(run, tmp_path: Path):
    from pixray.output import OutputWriter

    r = run(iterations=5, outdir=str(tmp_path / "o"), display_every=2)
    seen: list[tuple[str, int]] = []
    final = OutputWriter(r.settings).save_run(r, lambda step: seen.append(("step", step.index)),
                                              drawn=lambda picture: seen.append(("drawn", picture.index)))
    assert seen == [("drawn", 0), ("step", 0), ("step", 1), ("drawn", 2), ("step", 2), ("step", 3),
                    ("drawn", 4), ("step", 4), ("step", 5)] and final.is_final
    seen.clear()
    r = run(iterations=5, outdir=str(tmp_path / "p"), display_every=0)
    OutputWriter(r.settings).save_run(r, drawn=lambda picture: seen.append(("drawn", picture.index)))
    assert seen == []  # display_every 0: none


def _ffmpeg_metadata(path: Path) -> str:
    import subprocess

    import imageio_ffmpeg

    command = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "ffmetadata", "-"]
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


def test_a_run_writes_its_frames_and_videos_off_the_loop(run, tmp_path: Path):
    import imageio_ffmpeg
    from PIL import Image

    from pixray.media import video_fps
    from pixray.output import OutputWriter

    r = run(iterations=6, save_every=2, outdir=str(tmp_path / "o"), size=[15, 9], make_video=True, gif=True,
            prompts="a red circle | a blue square:-0.5")
    writer = OutputWriter(r.settings)
    final = writer.save_run(r)
    out = tmp_path / "o"
    steps = sorted(p.name for p in (out / "steps").iterdir())
    assert steps == ["frame_0000.png", "frame_0002.png", "frame_0004.png", "frame_0006.png", "output.gif",
                     "output.mp4"]
    assert (out / "steps" / "frame_0006.png").read_bytes() == (out / "output.png").read_bytes()
    assert read_png_metadata(out / "steps" / "frame_0002.png")["iteration"] == 2
    video = sorted(p.name for p in (out / "video").iterdir())
    assert video == [f"frame_{i:04d}.png" for i in range(7)]  # every step and the final one
    with Image.open(out / "video" / "frame_0006.png") as last:
        assert last.tobytes() == final.pil().tobytes()
    hold = video_fps(7)  # the last frame held a second
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out / "output.mp4"))
    assert frames == 7 + hold
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out / "steps" / "output.mp4"))
    assert frames == 4 + hold
    reader = imageio_ffmpeg.read_frames(str(out / "output.mp4"))
    meta = next(reader)
    assert meta["size"] == (16, 10)  # odd sides get a repeated edge (yuv420p)
    decoded = torch.frombuffer(bytearray(next(reader)), dtype=torch.uint8).view(10, 16, 3)
    reader.close()
    with Image.open(out / "video" / "frame_0000.png") as first:
        expected = torch.tensor(first.convert("L").get_flattened_data(), dtype=torch.float32).view(9, 15)
    luma = decoded[:9, :15].float() @ torch.tensor([0.299, 0.587, 0.114])
    assert (luma - expected).abs().mean() < 4  # the same picture (colour is subsampled: compare brightness)
    assert "comment=a red circle | a blue square:-0.5" in _ffmpeg_metadata(out / "output.mp4")
    with Image.open(out / "output.gif") as gif:
        assert gif.n_frames == 7 and gif.info["loop"] == 0
        gif.seek(6)
        assert gif.info["duration"] > 1000
    assert not [p for p in out.rglob(".tmp-*")]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_runs_files_get_the_permissions_the_umask_gives(run, tmp_path: Path, umask: int):
    """Files written through a temporary file (tempfile.mkstemp's) were readable by their owner only
    (0600) whatever the umask, so a web server or a shared volume's readers could not open them."""
    import os

    from pixray.output import OutputWriter

    r = run(iterations=2, save_every=1, outdir=str(tmp_path / "o"), make_video=True, gif=True)
    before = os.umask(umask)
    try:
        OutputWriter(r.settings).save_run(r)
    finally:
        os.umask(before)
    files = [p for p in (tmp_path / "o").rglob("*") if p.is_file()]
    assert {p.suffix for p in files} == {".png", ".svg", ".mp4", ".gif", ".yaml"}
    assert {p.relative_to(tmp_path).as_posix(): oct(p.stat().st_mode & 0o777) for p in files} == {
        p.relative_to(tmp_path).as_posix(): oct(0o666 & ~umask) for p in files}


def test_save_intermediates_off_writes_only_the_image(run, tmp_path: Path):
    from pixray.output import OutputWriter

    r = run(iterations=2, save_every=1, outdir=str(tmp_path / "o"), save_intermediates=False)
    OutputWriter(r.settings).save_run(r)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["output.png", "output.svg", "settings.yaml"]


def test_frame_writer_copies_the_image_and_reports_errors(tmp_path: Path):
    from PIL import Image

    from pixray.media import FrameWriter

    writer = FrameWriter(max_pending=2)
    image = torch.zeros(1, 3, 4, 4)
    writer.submit([tmp_path / "a.png", tmp_path / "b.png"], image)
    image.fill_(1)  # the drawer updates its tensor after the step
    writer.flush()
    with Image.open(tmp_path / "a.png") as a:
        assert a.getpixel((0, 0)) == (0, 0, 0)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    writer.submit([tmp_path / "missing" / "c.png"], image)
    writer.submit([tmp_path / "d.png"], image)  # dropped: the run stops at the error
    with pytest.raises(FileNotFoundError):
        writer.flush()
    writer.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit([tmp_path / "e.png"], image)


def test_an_interrupt_anywhere_in_submit_leaves_the_frame_writer_able_to_finish(tmp_path: Path):
    """Ctrl-C (or SIGTERM, which the CLI turns into one) raises KeyboardInterrupt wherever the main
    thread is, including inside the hand-over to the writer thread. Raised at each line that submit
    runs in turn (its own and the library code it calls), what the interrupted run then does, flush
    and close, must still end, with every image that was handed over written. (With queue.Queue an
    interrupt inside put's notify left the thread asleep and close waiting for ever: a CLI stopped by
    SIGTERM hung.)"""
    import sys
    import threading

    from pixray.media import FrameWriter

    image = torch.zeros(1, 3, 4, 4)
    line = 0
    while True:
        line += 1
        writer = FrameWriter(max_pending=2)
        writer.submit([tmp_path / f"{line}-before.png"], image)  # the thread is busy or waiting
        seen = 0

        def interrupt_at_line(frame, event, arg, target=line):
            nonlocal seen
            if event == "line":
                seen += 1
                if seen == target:
                    raise KeyboardInterrupt
            return interrupt_at_line

        sys.settrace(interrupt_at_line)
        try:
            writer.submit([tmp_path / f"{line}.png"], image)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        errors: list[BaseException] = []

        def finish(w=writer, errors=errors):
            try:
                w.flush()
                w.close()
            except BaseException as exc:  # reported below
                errors.append(exc)

        finishing = threading.Thread(target=finish, daemon=True)
        finishing.start()
        finishing.join(timeout=10)
        assert not finishing.is_alive(), f"flush and close hang after an interrupt at line {line} of submit"
        assert not errors, f"after an interrupt at line {line} of submit: {errors!r}"
        assert (tmp_path / f"{line}-before.png").exists()
        if not interrupted:  # every line of submit has been tried
            assert (tmp_path / f"{line}.png").exists()
            break
    assert line > 3


@pytest.mark.parametrize("video", ["steps", "video"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_an_interrupt_at_a_frames_hand_over_still_gets_the_video_of_the_frames_written(run, tmp_path, caplog,
                                                                                         monkeypatch, video,
                                                                                         when):
    """Ctrl-C (or the CLI's SIGTERM) landing as a frame is handed to the writer thread, just before or
    just after: the interrupted run still makes its video, of the frames written. A frame was counted
    for the video before its hand-over, so an interrupt between the two left a frame the video could
    not read: no video, and imageio's "No frames have been written" on stderr (a CI run of the CLI's
    SIGTERM test met it)."""
    from pixray.media import FrameWriter
    from pixray.output import OutputWriter

    r = run(iterations=4, save_every=1, outdir=str(tmp_path / "o"), make_video=video == "video",
            save_intermediates=video == "steps")
    writer = OutputWriter(r.settings)
    real, frames = FrameWriter.submit, 0

    def submit(self, paths, image, info=None):  # interrupted at the second frame's hand-over
        nonlocal frames
        frames += any(path.name.startswith("frame_") for path in paths)
        if frames == 2 and when == "before":
            raise KeyboardInterrupt
        real(self, paths, image, info)
        if frames == 2 and when == "after":
            raise KeyboardInterrupt

    monkeypatch.setattr(FrameWriter, "submit", submit)
    with pytest.raises(KeyboardInterrupt):
        writer.save_run(r)
    sequence = writer.steps if video == "steps" else writer.video
    assert sequence.frames and all(frame.is_file() for frame in sequence.frames)
    assert sequence.video.is_file() and sequence.video.stat().st_size > 0
    assert "No frames have been written" not in caplog.text  # imageio-ffmpeg's logger


def test_video_frame_rate_is_pixrays():
    from pixray.media import video_fps

    assert [video_fps(n) for n in (1, 26, 140, 280, 2000)] == [10, 10, 10, 20, 60]
