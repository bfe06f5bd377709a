"""``pixray batch``: jobs and sweeps, workers that keep their models, resuming, failures, Ray, the grid."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from pixray.batch import GRID, MANIFEST, Manifest, read_jobs, run_batch
from pixray.cli import main
from pixray.options import SettingsError

PROMPTS = ["a red circle", "a blue square", "a green cross"]


@pytest.fixture
def jobs_file(tmp_path, tiny_checkpoint) -> Path:
    """Six tiny jobs: three prompts times two seeds, on a tiny CLIP read from a checkpoint file (so
    every worker loads it through its model cache)."""
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({
        "settings": {"drawer": "fast_pixel", "clip_models": [str(tiny_checkpoint)], "size": [32, 24],
                     "iterations": 3, "num_cuts": 2, "device": "cpu", "save_intermediates": False},
        "sweep": {"prompts": PROMPTS, "seed": [1, 2]}}))
    return path


def _batch(capsys, *args: str) -> tuple[int, str]:
    code = main(["batch", *args, "--quiet"])
    return code, capsys.readouterr().err


def _images(directory: Path) -> dict[str, np.ndarray]:
    return {record["key"]: np.asarray(Image.open(directory / record["outputs"][0]))
            for record in Manifest(directory).latest().values()}


def test_a_sweep_is_every_combination_over_the_shared_settings(jobs_file):
    jobs = read_jobs(jobs_file, {"quality": "draft"})
    assert [(j.settings["prompts"], j.settings["seed"]) for j in jobs] == \
        [(p, s) for p in PROMPTS for s in (1, 2)]
    assert all(j.settings["quality"] == "draft" and j.settings["drawer"] == "fast_pixel" for j in jobs)
    assert len({j.key for j in jobs}) == 6 and len({j.directory for j in jobs}) == 6


def test_a_jobs_label_is_its_first_prompt_and_seed_whether_text_or_list(tmp_path):
    path = tmp_path / "jobs.yaml"
    path.write_text("- {prompts: 'a lighthouse | a storm', seed: 4}\n- {prompts: [a lighthouse, a storm]}\n")
    assert [job.label for job in read_jobs(path)] == ["a lighthouse (seed 4)", "a lighthouse"]


def test_jobs_files_in_every_form_and_their_mistakes(tmp_path):
    listed = tmp_path / "list.yaml"
    listed.write_text("- {prompts: a}\n- {prompts: b, seed: 3}\n")
    lines = tmp_path / "jobs.jsonl"
    lines.write_text('{"prompts": "a"}\n\n{"prompts": "b", "seed": 3}\n')
    assert [j.settings for j in read_jobs(listed)] == [j.settings for j in read_jobs(lines)] == \
        [{"prompts": "a"}, {"prompts": "b", "seed": 3}]
    for text, message in [("sweep: {seed: 3}", r"sweep 'seed' must be a non-empty list"),
                          ("jobs: [{outdir: x}]", r"'outdir' cannot be set in a batch"),
                          ("colours: [red]", r"holds 'settings', 'jobs' and/or 'sweep' \(found colours\)"),
                          ("- 3", r"job 1 must be a mapping"), ("[unclosed", r"not valid YAML")]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(SettingsError, match=message):
            read_jobs(bad)
    lines.write_text('{"prompts": "a"}\n\n{bad\n')  # the file's line, not json's count within it
    with pytest.raises(SettingsError, match=r"not valid JSONL: line 3, column 2: Expecting property name"):
        read_jobs(lines)
    with pytest.raises(SettingsError, match=r"cannot be read"):
        read_jobs(tmp_path / "absent.yaml")


def test_two_workers_run_six_jobs_loading_their_models_once_and_a_rerun_resumes(jobs_file, tmp_path, capsys):
    out = tmp_path / "batch"
    code, err = _batch(capsys, str(jobs_file), "--outdir", str(out), "--workers", "2")
    assert code == 0, err
    records = Manifest(out).latest()
    assert len(records) == 6 and {r["status"] for r in records.values()} == {"done"}
    assert all((out / r["outputs"][0]).is_file() for r in records.values())
    assert {(r["settings"]["prompts"], r["seed"]) for r in records.values()} == {(p, s) for p in PROMPTS
                                                                               for s in (1, 2)}
    # Each worker read the CLIP file once, however many jobs it ran.
    loads: dict[str, int] = {}
    for record in records.values():
        loads[record["worker"]] = max(loads.get(record["worker"], 0), record["model_loads"])
    assert set(loads.values()) == {1} and len(loads) == 2
    lines = (out / MANIFEST).read_text().splitlines()
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("output.png")}
    code, err = _batch(capsys, str(jobs_file), "--outdir", str(out), "--workers", "2")
    assert code == 0 and "0 done, 6 already done, 0 failed" in err
    assert (out / MANIFEST).read_text().splitlines() == lines
    assert {p: p.stat().st_mtime_ns for p in out.rglob("output.png")} == stamps
    grid = Image.open(out / GRID)  # one 192-pixel cell (and its caption) per job, 3 x 2
    assert grid.size == (3 * 192, 2 * (192 + 34))


def test_a_bad_job_fails_alone_and_is_retried_on_the_next_run(tmp_path, tiny_checkpoint, capsys):
    shared = {"drawer": "fast_pixel", "clip_models": [str(tiny_checkpoint)], "size": [32, 24],
              "iterations": 2, "num_cuts": 2, "device": "cpu", "save_intermediates": False, "seed": 1}
    path = tmp_path / "jobs.yaml"
    path.write_text(yaml.safe_dump({"settings": shared, "jobs": [
        {"prompts": "a red circle"}, {"prompts": "a blue square", "drawer": "pixle"},
        {"prompts": "a cross", "init_image": str(tmp_path / "missing.png")}]}))
    out = tmp_path / "batch"
    code, err = _batch(capsys, str(path), "--outdir", str(out))
    assert code == 1 and "1 done, 0 already done, 2 failed" in err
    # each failure is said on the console as it happens, not only in the manifest
    assert "pixray: job 1 failed: setting 'drawer': 'pixle' is not allowed" in err
    assert "pixray: job 2 failed: setting 'init_image'" in err and "missing.png" in err
    by_prompt = {r["settings"]["prompts"]: r for r in Manifest(out).latest().values()}
    assert by_prompt["a red circle"]["status"] == "done"
    assert by_prompt["a blue square"]["status"] == "failed"
    assert "'pixle' is not allowed" in by_prompt["a blue square"]["error"]
    assert by_prompt["a cross"]["status"] == "failed" and "missing.png" in by_prompt["a cross"]["error"]
    Image.new("RGB", (32, 24), "red").save(tmp_path / "missing.png")  # the user fixes one
    code, err = _batch(capsys, str(path), "--outdir", str(out))
    assert code == 1 and "1 done, 1 already done, 1 failed" in err
    assert Manifest(out).latest()[by_prompt["a cross"]["key"]]["status"] == "done"


def test_an_interrupted_record_is_ignored_and_its_job_runs_again(jobs_file, tmp_path, capsys):
    out = tmp_path / "batch"
    jobs = read_jobs(jobs_file)
    out.mkdir()
    manifest = Manifest(out)
    manifest.append(jobs[0].record(status="queued"))
    with manifest.path.open("a") as f:
        f.write('{"key": "cut sh')  # the line an interruption cut short
    (out / jobs[0].directory).mkdir()
    (out / jobs[0].directory / "partial.png").write_bytes(b"")
    code, err = _batch(capsys, str(jobs_file), "--outdir", str(out))
    assert code == 0 and "6 done" in err
    assert not (out / jobs[0].directory / "partial.png").exists()  # the unfinished try was cleared
    # The torn line stays on its own: the records after it were not glued to it.
    lines = manifest.path.read_text().splitlines()
    assert lines[1] == '{"key": "cut sh' and all(json.loads(line) for line in lines[:1] + lines[2:])
    assert len(lines) == 2 + 6 + 6  # job 0 queued, the torn line; then each job queued and done


def _progress(jobs_file: Path, directory: Path, **options) -> dict[str, list[int]]:
    """The steps each job reported, running the batch with job progress."""
    steps: dict[str, list[int]] = {}

    def seen(record: dict) -> None:
        if "progress" in record:
            steps.setdefault(record["progress"], []).append(record["step"])

    summary = run_batch(read_jobs(jobs_file), directory, on_record=seen, job_progress=True, **options)
    assert summary.failed == 0
    return steps


def test_job_progress_reports_every_step_of_every_job(jobs_file, tmp_path):
    steps = _progress(jobs_file, tmp_path / "batch")
    assert len(steps) == 6 and all(s == [1, 2, 3] for s in steps.values())


def test_a_local_ray_instance_draws_the_same_images_as_local_workers(jobs_file, tmp_path, capsys,
                                                                     monkeypatch):
    """And its workers run at the batch's own niceness: Ray starts its workers at 15, where beside two other
    busy processes on 2 cores two actors took 70 s to start, against 2.4 s on an idle machine."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (make install installs it)")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert _batch(capsys, str(jobs_file), "--outdir", str(local))[0] == 0
    niceness, init = [], ray.init

    def init_and_ask_a_worker(*args, **kwargs):
        context = init(*args, **kwargs)
        niceness.append(ray.get(ray.remote(lambda: os.nice(0)).remote()))
        return context

    monkeypatch.setattr(ray, "init", init_and_ask_a_worker)
    steps = _progress(jobs_file, on_ray, workers=2, ray_address="local")  # `--ray local --workers 2`
    assert niceness == [os.nice(0)]
    assert len(steps) == 6 and all(s == [1, 2, 3] for s in steps.values())  # through a Ray queue
    records = Manifest(on_ray).latest()
    assert {r["worker"] for r in records.values()} <= {"ray-0", "ray-1"} and len(records) == 6
    ray_images, local_images = _images(on_ray), _images(local)
    assert ray_images.keys() == local_images.keys()
    assert all(np.array_equal(ray_images[key], local_images[key]) for key in local_images)


def test_ray_without_the_extra_says_how_to_install_it(jobs_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    code, err = _batch(capsys, str(jobs_file), "--outdir", str(tmp_path / "b"), "--ray", "auto")
    assert code == 2 and "pip install 'pixray[ray]'" in err and len(err.strip().splitlines()) == 1


def test_the_manifest_records_settings_seed_outputs_time(jobs_file, tmp_path, capsys):
    out = tmp_path / "batch"
    assert _batch(capsys, str(jobs_file), "--outdir", str(out))[0] == 0
    record = json.loads((out / MANIFEST).read_text().splitlines()[-1])
    assert {"key", "job", "directory", "settings", "seed", "status", "outputs", "seconds", "worker",
            "model_loads"} <= set(record)
    assert record["outputs"] == [f"{record['directory']}/output.png"] and record["seconds"] > 0


def test_more_local_workers_than_cores_or_gpus_is_refused_before_anything_starts(jobs_file, tmp_path,
                                                                                 monkeypatch):
    # Each worker is a process with its own copy of the models: a mistyped --workers 50 on a laptop
    # would start fifty of them.
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    monkeypatch.setattr("torch.cuda.device_count", lambda: 0)
    with pytest.raises(SettingsError, match=r"--workers 3 is more local worker processes than this machine "
                                            r"has CPU cores \(2\) or GPUs \(0\).*give at most 2"):
        run_batch(read_jobs(jobs_file), tmp_path / "out", workers=3)
    assert not (tmp_path / "out").exists()


def test_local_workers_size_their_passes_from_their_share_of_the_memory(jobs_file, tmp_path, monkeypatch):
    """Each of several local workers holds its own models and computes its own passes, so it counts on
    its share of the machine's memory, not all of it (a CPU pass in bfloat16 takes twice the cutouts
    where 8 GiB or more may be used)."""
    import pixray.batch as batch_module
    import pixray.runtime as runtime
    from pixray import engine
    from pixray.output import OutputWriter

    monkeypatch.setattr(runtime, "usable_memory", lambda: 12 * 2**30)
    monkeypatch.setattr(runtime, "usable_cpus", lambda: 4)
    assert batch_module.worker_share(2) == (2, 6 * 2**30)
    monkeypatch.setattr(engine, "usable_memory", lambda: 12 * 2**30)
    seen = []
    save_run = OutputWriter.save_run
    monkeypatch.setattr(OutputWriter, "save_run", lambda writer, run, *args: seen.append(run.pass_positions)
                        or save_run(writer, run, *args))
    job = read_jobs(jobs_file, {"precision": "bfloat16"})[0]
    for memory in (None, 6 * 2**30):
        record = batch_module.BatchWorker("w", memory=memory).run(job, str(tmp_path / f"out{memory}"))
        assert record["status"] == "done", record.get("error")
    assert seen == [24 * 197, 12 * 197]

