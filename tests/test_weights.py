"""Weight downloads against a local HTTP server: resume, checksum, mirrors, atomic rename."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from local_http import serving

from pixray.model_cache import models_for, weight_files
from pixray.weights import MANIFEST, CheckpointError, WeightFile
from pixray.weights.__main__ import main
from pixray.weights.download import DownloadError, download

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at /file (honouring Range), 404 elsewhere; records the Range headers seen."""

    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        if self.path != "/file":
            self.send_error(404)
            return
        header = self.headers.get("Range")
        self.ranges.append(header)
        start = int(header.split("=")[1].rstrip("-")) if header else 0
        body = PAYLOAD[start:]
        self.send_response(206 if header else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    _RangeHandler.ranges = []
    with serving(_RangeHandler) as url:
        yield url


def _entry(base: str, sha: str | None = None, urls: tuple[str, ...] | None = None) -> WeightFile:
    return WeightFile("model.pt", urls or (f"{base}/file",), sha or hashlib.sha256(PAYLOAD).hexdigest())


def test_download_verifies_and_renames_atomically(server, tmp_path):
    seen = []
    path = download(_entry(server), tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD and not (tmp_path / "model.pt.part").exists()
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_download_resumes_a_partial_file(server, tmp_path):
    (tmp_path / "model.pt.part").write_bytes(PAYLOAD[:1000])
    assert download(_entry(server), tmp_path).read_bytes() == PAYLOAD
    assert _RangeHandler.ranges == ["bytes=1000-"]


def test_two_downloads_of_one_file_at_once_fetch_it_once(server, tmp_path, monkeypatch):
    """Two processes (here threads, each opening its own lock) filling one weights directory: the
    second waits for the first and finds the file there; they never append to one .part file."""
    import time

    import pixray.weights.download as download_module

    fetch = download_module._fetch

    def slow_fetch(*args, **kwargs):
        time.sleep(0.3)  # both have started before either has fetched anything
        return fetch(*args, **kwargs)

    monkeypatch.setattr(download_module, "_fetch", slow_fetch)
    results, errors = [], []

    def fetch_it():
        try:
            results.append(download(_entry(server), tmp_path).read_bytes())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fetch_it) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and results == [PAYLOAD, PAYLOAD]
    assert _RangeHandler.ranges == [None]  # one request: the second found the file
    assert sorted(p.name for p in tmp_path.iterdir()) == [".model.pt.verified", "model.pt"]  # no .part


def test_checksum_failure_keeps_nothing(server, tmp_path):
    with pytest.raises(CheckpointError, match="fails its checksum"):
        download(_entry(server, sha="0" * 64), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_mirror_is_tried_when_the_first_host_fails(server, tmp_path):
    entry = _entry(server, urls=(f"{server}/gone", f"{server}/file"))
    assert download(entry, tmp_path).read_bytes() == PAYLOAD


def test_unreachable_hosts_name_the_file_and_where_to_put_it(server, tmp_path):
    with pytest.raises(DownloadError) as info:
        download(_entry(server, urls=(f"{server}/gone",)), tmp_path)
    assert "model.pt" in str(info.value) and "404" in str(info.value) and str(tmp_path) in str(info.value)


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (writes fail: ENOSPC)")
def test_a_full_disk_ends_the_download_with_what_to_do(server, tmp_path):
    """A write that fails (here the partial file is /dev/full) says so and what to do, without trying the
    other URLs (they would fail the same way) or the offline advice meant for unreachable hosts."""
    (tmp_path / "model.pt.part").symlink_to("/dev/full")
    with pytest.raises(DownloadError) as info:
        download(_entry(server, urls=(f"{server}/file", f"{server}/file")), tmp_path)
    message = str(info.value)
    assert "No space left on device" in message and "model.pt.part" in message
    assert "weights_dir" in message and "PIXRAY_WEIGHTS_DIR" in message and "Offline" not in message
    assert _RangeHandler.ranges == [None]  # one request: the mirror was not tried


def test_a_download_refused_for_another_reason_is_not_told_to_free_space(server, tmp_path, monkeypatch):
    import pathlib

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "open", refused)  # as for a directory this user may not write
    with pytest.raises(DownloadError) as info:
        download(_entry(server), tmp_path)
    assert str(info.value) == (f"cannot write '{tmp_path}/model.pt.part': Permission denied. Point the "
                               "weights_dir setting or $PIXRAY_WEIGHTS_DIR at another directory")


def test_present_file_is_verified_not_overwritten(server, tmp_path):
    (tmp_path / "model.pt").write_bytes(b"not the model")
    with pytest.raises(CheckpointError, match="fails its checksum"):
        download(_entry(server), tmp_path)
    assert (tmp_path / "model.pt").read_bytes() == b"not the model"


def test_names_map_to_manifest_files():
    assert weight_files("ViT-B/32") == ["ViT-B-32.pt"]
    assert weight_files("imagenet_f16_16384") == ["vqgan_imagenet_f16_16384.yaml",
                                                  "vqgan_imagenet_f16_16384.ckpt"]
    assert weight_files("shapes-demo") == []
    assert models_for() == ["ViT-B/32", "ViT-B/16", "imagenet_f16_16384"]
    for name in models_for():
        assert all(f in MANIFEST and MANIFEST[f].urls for f in weight_files(name))


def test_cli_list_and_bad_name(tmp_path, capsys):
    (tmp_path / "RN50.pt").write_bytes(b"x")
    assert main(["list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "RN50.pt" in out and "present" in out and "vqgan_imagenet_f16_16384.ckpt" in out
    assert main(["download", "ViT-B/33", "--dir", str(tmp_path)]) == 2
    assert "ViT-B/32" in capsys.readouterr().err
    assert main(["download", "shapes-demo", "--dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == "shapes-demo: ships with pixray; nothing to download\n"
    (tmp_path / "a-file").write_bytes(b"")
    assert main(["download", "RN50", "--dir", str(tmp_path / "a-file" / "weights")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # One line, before any download's progress bar.
    assert len(err) == 1 and err[0].startswith("pixray.weights: error: cannot write into ")
    assert "a-file" in err[0]


def test_verified_file_is_hashed_once_until_it_changes(tmp_path, monkeypatch):
    import pixray.weights as weights

    path = tmp_path / "model.pt"
    path.write_bytes(PAYLOAD)
    entry = _entry("unused")
    weights.verify(path, entry)  # hashes, then stamps size + mtime + digest
    monkeypatch.setattr(weights, "sha256_of", lambda p: pytest.fail("hashed again"))
    weights.verify(path, entry)
    path.write_bytes(PAYLOAD[::-1])  # changed: the stamp no longer matches
    monkeypatch.undo()
    # The command it gives fetches into the directory that holds the file, not ./weights.
    with pytest.raises(CheckpointError, match=rf"fails its checksum.* download model.pt --dir {tmp_path}`$"):
        weights.verify(path, entry)
