"""The benchmarks' temporary folders (their random weight files, hundreds of MB a run) go when the script
ends."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"

# A script as the benchmarks are: bench/ on its path, a folder with a file in it, then an ending.
SCRIPT = """
import sys, time
sys.path.insert(0, {bench!r})
from scratch import scratch_directory
directory = scratch_directory("pixray-test-scratch-")
(directory / "weights.ckpt").write_bytes(b"0" * 1000)
print(directory, flush=True)
sys.stdin.readline()  # the test has seen the folder
ending = sys.argv[1]
if ending == "raise":
    raise RuntimeError("a benchmark failed")
if ending == "wait":
    try:
        print("waiting", flush=True)
        time.sleep(60)
    finally:
        print("finally ran", flush=True)
"""


@pytest.mark.parametrize("ending, code", [("return", 0), ("raise", 1), ("wait", 128 + signal.SIGTERM)])
def test_the_folder_is_removed_however_the_script_ends(ending, code):
    script = SCRIPT.format(bench=str(BENCH))
    process = subprocess.Popen([sys.executable, "-c", script, ending], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    directory = Path(process.stdout.readline().strip())
    assert (directory / "weights.ckpt").is_file()
    process.stdin.write("go\n")
    process.stdin.flush()
    if ending == "wait":  # what `timeout` in bench/gpu_checks.sh sends
        assert process.stdout.readline() == "waiting\n"
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == code, err
    assert not directory.exists()
    if ending == "wait":
        assert "finally ran" in out  # a server's stop in a finally block runs before the removal
