"""The commands, the web page and pixray.run fetch the weight files a run misses, as Pixray fetched what a
first run needs: from the manifest's URLs (here a local server standing in for them), each once, unless
PIXRAY_DOWNLOAD=0."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import pytest
import yaml
from local_http import QuietFiles, serving
from test_vqgan import write_checkpoint

import pixray.model_cache
from pixray.batch import Manifest
from pixray.cli import main

FILES = ["vqgan_imagenet_f16_16384.yaml", "vqgan_imagenet_f16_16384.ckpt"]  # the default vqgan_model's


@pytest.fixture
def hosts(tmp_path, monkeypatch):
    """The default VQGAN's two files (tiny, in taming's formats) served over HTTP from a local directory,
    every manifest entry's URLs pointed there; yields the requests the server saw."""
    served = tmp_path / "served"
    served.mkdir()
    write_checkpoint(served, "vqgan_imagenet_f16_16384")
    requests: list[str] = []

    class Handler(QuietFiles):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

    real = pixray.model_cache.download
    with serving(functools.partial(Handler, directory=served)) as address:

        def local(entry, directory, progress=None):
            url = f"{address}/{entry.filename}"
            return real(dataclasses.replace(entry, urls=(url,)), directory, progress)

        monkeypatch.setattr(pixray.model_cache, "download", local)
        monkeypatch.setenv("PIXRAY_DOWNLOAD", "1")
        yield requests


RUN = ["--prompts", "a red circle", "--drawer", "vqgan", "--clip_models", "shapes-demo", "--size", "32", "32",
       "--iterations", "2", "--num_cuts", "2", "--device", "cpu", "--quiet"]


def test_a_run_fetches_the_weight_files_it_misses_then_runs(tmp_path, hosts, caplog):
    weights = tmp_path / "w"
    assert main([*RUN, "--weights_dir", str(weights), "--outdir", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in weights.iterdir()) == sorted(FILES)  # whole files, no .part left
    assert sorted(hosts) == sorted(f"/{f}" for f in FILES)
    said = f"fetching {', '.join(FILES)} into {weights} (PIXRAY_DOWNLOAD=0 turns this off)"
    assert caplog.messages == [said]
    assert (tmp_path / "o" / "output.png").is_file()
    # Present now: the next run fetches nothing.
    assert main([*RUN, "--weights_dir", str(weights), "--outdir", str(tmp_path / "o2")]) == 0
    assert len(hosts) == 2 and caplog.messages == [said]


def test_nothing_is_fetched_with_pixray_download_0_or_before_the_settings_are_checked(tmp_path, hosts, capsys,
                                                                                       caplog, monkeypatch):
    weights = tmp_path / "w"
    # What only the run checks as it is made (an image prompt's file) is refused before anything is fetched.
    assert main([*RUN, "--weights_dir", str(weights), "--outdir", str(tmp_path / "o"), "--image_prompts",
                 str(tmp_path / "nope.png")]) == 2
    assert hosts == [] and caplog.messages == [] and "'image_prompts': cannot read" in capsys.readouterr().err
    monkeypatch.setenv("PIXRAY_DOWNLOAD", "0")
    assert main([*RUN, "--weights_dir", str(weights), "--outdir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert hosts == [] and "python -m pixray.weights download imagenet_f16_16384" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_a_file_no_url_gives_is_one_line_and_leaves_no_outdir(tmp_path, hosts, capsys):
    (tmp_path / "served" / FILES[1]).unlink()  # the host lost the checkpoint
    weights = tmp_path / "w"
    assert main([*RUN, "--weights_dir", str(weights), "--outdir", str(tmp_path / "o")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"pixray: error: could not download '{FILES[1]}'") and "404" in line
    assert not (tmp_path / "o").exists() and not (weights / FILES[1]).exists()
    # Offline (no URL gives the first), the files still missing are named with one command for all.
    (tmp_path / "served" / FILES[0]).unlink()
    assert main([*RUN, "--weights_dir", str(tmp_path / "w2"), "--outdir", str(tmp_path / "o")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"pixray: error: could not download '{FILES[0]}'")
    command = f"python -m pixray.weights download {' '.join(FILES)} --dir {tmp_path / 'w2'}"
    assert line.endswith(f"; '{FILES[1]}' is missing there too (`{command}` fetches them all)")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (writes fail: ENOSPC)")
def test_a_full_disk_is_one_line_saying_what_to_do(tmp_path, hosts, capsys):
    """A download that cannot be written (the partial file is /dev/full, as on a full disk) says so,
    and neither advises fetching the files elsewhere nor names the other files."""
    weights = tmp_path / "w"
    weights.mkdir()
    (weights / f"{FILES[0]}.part").symlink_to("/dev/full")
    assert main([*RUN, "--weights_dir", str(weights), "--outdir", str(tmp_path / "o")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"pixray: error: cannot write '{weights}/{FILES[0]}.part': No space left on device. "
                    "Free space there, or point the weights_dir setting or $PIXRAY_WEIGHTS_DIR at another "
                    "directory")
    assert hosts == [f"/{FILES[0]}"] and not (tmp_path / "o").exists()


def test_a_batch_fetches_what_its_jobs_miss_once_before_the_workers_start(tmp_path, hosts, caplog):
    weights = tmp_path / "w"
    jobs = tmp_path / "jobs.yaml"
    jobs.write_text(yaml.safe_dump({
        "settings": {"drawer": "vqgan", "clip_models": ["shapes-demo"], "size": [32, 32], "iterations": 2,
                     "num_cuts": 2, "device": "cpu", "weights_dir": str(weights)},
        "jobs": [{"prompts": "a red circle"}, {"prompts": "a blue square"},
                 {"prompts": "x", "drawer": "nope"}]}))
    assert main(["batch", str(jobs), "--outdir", str(tmp_path / "b"), "--quiet"]) == 1  # the bad job fails
    assert sorted(hosts) == sorted(f"/{f}" for f in FILES)
    records = Manifest(tmp_path / "b").latest().values()
    assert sorted(r["status"] for r in records) == ["done", "done", "failed"]
    assert [m for m in caplog.messages if m.startswith("fetching")] == [
        f"fetching {', '.join(FILES)} into {weights} (PIXRAY_DOWNLOAD=0 turns this off)"]
    # Run again with the weights gone: the jobs done are skipped, so nothing is fetched for them (the
    # bad job still fails on its own).
    for name in FILES:
        (weights / name).unlink()
    assert main(["batch", str(jobs), "--outdir", str(tmp_path / "b"), "--quiet"]) == 1
    assert len(hosts) == 2 and not (weights / FILES[0]).exists()


def test_a_weights_directory_that_cannot_be_made_is_one_line(tmp_path, hosts, capsys):
    (tmp_path / "file").write_text("x")
    assert main([*RUN, "--weights_dir", str(tmp_path / "file" / "w"), "--outdir", str(tmp_path / "o")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"pixray: error: cannot fetch weight file '{FILES[0]}' into '{tmp_path}/file/w'")
    assert "weights_dir" in line and hosts == [] and not (tmp_path / "o").exists()


def test_the_web_pages_run_fetches_what_it_misses_and_shows_each_download(tmp_path, hosts, monkeypatch):
    from pixray.ui.form import FIELDS
    from pixray.ui.page import Page

    page = Page({"clip_models": ["shapes-demo"], "size": [32, 32], "num_cuts": 2, "device": "cpu",
                 "weights_dir": str(tmp_path / "w"), "outdir": str(tmp_path / "o" / "%SEQ%")})
    form = {name: None for name in FIELDS} | {"prompts": "a red circle", "drawer": "vqgan", "iterations": 2}
    views = list(page.generate("session", form, ""))
    downloads = [v.message for v in views if v.message.startswith("Downloading")]
    assert downloads and all(v.running for v in views[:-1]) and views[-1].message.startswith("Done: 2 steps")
    assert re.match(rf"Downloading {FILES[1]}, which the run needs: (\d+) of \1 MB", downloads[-1])
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(FILES)
    # Without downloads the run fails with the files and the command, and the page stays up.
    monkeypatch.setenv("PIXRAY_DOWNLOAD", "0")
    views = list(page.generate("session", form, "vqgan_model: wikiart_16384"))
    assert views[-1].message.startswith("Failed: ") and "download wikiart_16384" in views[-1].message


def test_pixray_run_fetches_as_the_command_does_and_generate_never(tmp_path, hosts, monkeypatch):
    import pixray

    settings = {"clip_models": ["shapes-demo"], "size": [32, 32], "iterations": 2, "num_cuts": 2,
                "device": "cpu", "weights_dir": str(tmp_path / "w")}
    with pytest.raises(pixray.MissingWeightsError, match=r"pixray\.weights download imagenet_f16_16384"):
        pixray.generate(prompts="a red circle", drawer="vqgan", **settings)  # the library: explicit
    assert hosts == []
    image = pixray.run("a red circle", "vqgan", outdir=str(tmp_path / "o"), **settings)  # Pixray's one call
    assert image.size == (32, 32) and sorted(hosts) == sorted(f"/{f}" for f in FILES)


def test_stop_on_the_page_ends_a_download_and_keeps_what_it_fetched(tmp_path, hosts):
    from pixray.model_cache import ModelCache
    from pixray.settings import build_settings
    from pixray.ui.session import Failed, RunSession

    settings = build_settings({"prompts": "a red circle", "drawer": "vqgan", "clip_models": ["shapes-demo"],
                               "size": [32, 32], "iterations": 2, "device": "cpu",
                               "weights_dir": str(tmp_path / "w"), "outdir": str(tmp_path / "o")})
    session = RunSession(settings, ModelCache.for_settings(settings))
    session.stop()  # pressed before the first data arrives
    session.start()
    *_, last = session.events()
    assert isinstance(last, Failed) and last.message.startswith(f"stopped while downloading {FILES[0]}")
    assert (tmp_path / "w" / f"{FILES[0]}.part").is_file() and not (tmp_path / "w" / FILES[0]).exists()
    # The next run resumes it and goes on.
    session = RunSession(settings, ModelCache.for_settings(settings))
    session.start()
    *_, last = session.events()
    assert not isinstance(last, Failed), last
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == sorted(FILES)
