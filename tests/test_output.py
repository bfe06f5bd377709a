import datetime as dt
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
    assert first == tmp_path / "20261122_0001"
    first.mkdir()
    assert resolve_outdir(str(tmp_path / "%DATE%_%SEQ%"), day) == tmp_path / "20261122_0002"


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
    with pytest.raises(SettingsError, match="'output'"):
        OutputWriter(run(output="../escape.png").settings)
