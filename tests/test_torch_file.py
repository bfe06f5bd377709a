"""Reading torch.save files: mapped where asked and the format allows, read otherwise, the same objects."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from uninstalled_classes import class_of_an_uninstalled_library

from pixray.weights import CheckpointError
from pixray.weights.torch_file import read_torch_file


def _mapped_from(tensor: torch.Tensor, path: Path) -> bool:
    """Whether ``tensor``'s memory lies in a mapping of the file ``path`` (Linux's /proc/self/maps)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split(maxsplit=5)
        if len(rest) == 5 and rest[4] == str(path.resolve()):
            low, high = (int(end, 16) for end in span.split("-"))
            if low <= address < high:
                return True
    return False


def test_a_zip_format_file_is_mapped_where_asked(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"weight": torch.arange(4096.0), "bias": torch.ones(3)}, path)
    mapped, read = read_torch_file(path, mapped=True), read_torch_file(path)
    assert _mapped_from(mapped["weight"], path) and not _mapped_from(read["weight"], path)
    assert all(torch.equal(mapped[k], read[k]) for k in read)


def test_a_checkpoint_naming_uninstalled_classes_is_mapped_too(tmp_path):
    path = tmp_path / "last.ckpt"
    with class_of_an_uninstalled_library() as ModelCheckpoint:
        torch.save({"state_dict": {"w": torch.arange(4096.0)}, "callbacks": {ModelCheckpoint: {}}}, path)
    checkpoint = read_torch_file(path, mapped=True)
    assert torch.equal(checkpoint["state_dict"]["w"], torch.arange(4096.0))
    assert _mapped_from(checkpoint["state_dict"]["w"], path)


def test_the_old_format_is_read_and_junk_refused_when_mapping_is_asked(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"w": torch.ones(5)}, path, _use_new_zipfile_serialization=False)  # before torch 1.6
    assert torch.equal(read_torch_file(path, mapped=True)["w"], torch.ones(5))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match=r"junk\.pt"):
        read_torch_file(tmp_path / "junk.pt", mapped=True)
