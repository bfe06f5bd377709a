"""The real Cog server (coglet) on 127.0.0.1, started for tests, soak runs and fuzzing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
START_DEADLINE = 120  # seconds for the server to report READY (or SETUP_FAILED)
BASE_SETTINGS = "clip_models: [shapes-demo]\nsize: [48, 32]\niterations: 6\nnum_cuts: 4\ndevice: cpu\n"


def cog_environment() -> dict[str, str]:
    """The variables cog.yaml's ``environment`` sets in the model's container (``NAME=value`` lines)."""
    config = yaml.safe_load((ROOT / "cog.yaml").read_text())
    return dict(line.split("=", 1) for line in config.get("environment") or [])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m cog.server.http`` for predict.py:Predictor, with the venv's bin first on PATH and
    cog.yaml's environment, as in the model's container."""

    def __init__(self, tmp: Path, base: str = BASE_SETTINGS, **env: str) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / "server.log").open("wb")
        (tmp / "base.yaml").write_text(base)
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
        environ = {**os.environ, **cog_environment(), "PATH": path,
                   "COG_PREDICT_TYPE_STUB": "predict.py:Predictor", "PORT": str(self.port),
                   "PIXRAY_SETTINGS": str(tmp / "base.yaml"), "PIXRAY_PRELOAD": "shapes-demo",
                   "PIXRAY_OUTPUT_DIR": str(tmp / "predictions"), "PIXRAY_DOWNLOAD": "0",
                   "PIXRAY_WEIGHTS_DIR": str(tmp / "weights"), "OMP_NUM_THREADS": "1", **env}
        self.process = subprocess.Popen([sys.executable, "-m", "cog.server.http", "--host", "127.0.0.1"],
                                        cwd=ROOT, env=environ, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_for(self, *states: str) -> dict:
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "server exited during setup"
            try:
                health = self.get("/health-check")
                if health["status"] in states:
                    return health
            except OSError:
                pass
            time.sleep(0.25)
        raise TimeoutError(f"server not {states} within {START_DEADLINE} s")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.load(response)

    def post(self, path: str, body: dict | None = None, timeout: float = 120) -> tuple[int, dict]:
        request = urllib.request.Request(self.url + path, data=json.dumps(body or {}).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)

    def predict(self, input_: dict) -> tuple[int, dict]:
        """A sync prediction. coglet frees a slot just after answering, so wait for READY first."""
        self.wait_for("READY")
        return self.post("/predictions", {"input": input_})

    def events(self, input_: dict, prediction_id: str) -> Iterator[tuple[float, str, dict]]:
        """(arrival time, event name, data) of an SSE prediction, as each event arrives."""
        self.wait_for("READY")
        request = urllib.request.Request(
            f"{self.url}/predictions/{prediction_id}", data=json.dumps({"input": input_}).encode(),
            headers={"Content-Type": "application/json", "Accept": "text/event-stream"}, method="PUT")
        with urllib.request.urlopen(request, timeout=120) as response:
            name = None
            for raw in response:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[len("event: "):]
                elif line.startswith("data: ") and name:
                    yield time.monotonic(), name, json.loads(line[len("data: "):])

    def rss_mb(self) -> float:
        """Resident memory of the server and its worker together, in MiB."""
        total = 0
        for status in Path("/proc").glob("[0-9]*/status"):
            try:
                text = status.read_text()
                if os.getpgid(int(status.parent.name)) != self.process.pid:
                    continue
            except (OSError, ValueError):
                continue
            total += next((int(line.split()[1]) for line in text.splitlines()
                           if line.startswith("VmRSS:")), 0)
        return total / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


