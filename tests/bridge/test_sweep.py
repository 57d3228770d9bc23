"""Sweeps (issue 7 §5): grid expansion, skip/resume of finished runs, local and Ray engines."""

from __future__ import annotations

import importlib.util

import pytest

from robmem.bridge import sweep
from robmem.bridge.sweep import run_state, run_sweep, sweep_runs
from robmem.empirics.config import TrainConfig
from robmem.empirics.runs import load_metrics
from robmem.empirics.trainers import train

HAS_RAY = importlib.util.find_spec("ray") is not None


def tiny(**kw) -> TrainConfig:
    base = dict(
        dataset="digits", n_train=48, n_test=24, model="linear", method="pgd", epochs=2,
        batch_size=24, attack_steps=1, eval_attack_steps=1, schedule="constant", lr=0.05,
        num_threads=1,
    )  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def _strip_times(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


def test_grid_is_the_cartesian_product_in_order():
    grid = {"seed": [0, 1, 2], "label_noise": [0.0, 0.5], "epsilon": [0.1, 0.2]}
    runs = sweep_runs(tiny(), grid, "out")
    configs = [r.config for r in runs]
    assert len(configs) == 12
    points = [(c.seed, c.label_noise, c.epsilon) for c in configs]
    assert points == [(s, r, e) for s in (0, 1, 2) for r in (0.0, 0.5) for e in (0.1, 0.2)]
    assert all(c.dataset == "digits" and c.epochs == 2 for c in configs)
    assert len({r.name for r in runs}) == 12
    assert runs[0].name == "seed=0_label_noise=0_epsilon=0.1"


@pytest.mark.parametrize(
    ("grid", "exc", "match"),
    [
        ({"sead": [0]}, ValueError, "sead"),
        ({"seed": []}, ValueError, "seed"),
        ({"seed": [1, 1]}, ValueError, "repeated"),
        ({"seed": 3}, TypeError, "seed"),
        ({"label_noise": [0.0, 1.5]}, ValueError, "label_noise"),
        ({"epsilon": [-0.1]}, ValueError, "epsilon"),
    ],
)
def test_bad_grids_name_the_field(grid, exc, match):
    with pytest.raises(exc, match=match):
        sweep_runs(tiny(), grid, "out")


def test_bad_engine_arguments(tmp_path):
    runs = sweep_runs(tiny(), {"seed": [0]}, tmp_path)
    with pytest.raises(ValueError, match="backend"):
        run_sweep(runs, backend="slurm")
    with pytest.raises(ValueError, match="jobs"):
        run_sweep(runs, jobs=0)
    with pytest.raises(ValueError, match="cpus_per_run"):
        run_sweep(runs, cpus_per_run=0)
    assert not any(tmp_path.iterdir())


def test_sequential_sweep_skips_finished_and_resumes_partial(tmp_path):
    runs = sweep_runs(tiny(), {"seed": [0, 1]}, tmp_path)
    first = run_sweep(runs)
    assert [o.status for o in first] == ["completed", "completed"]
    assert all(run_state(r) == "completed" for r in runs)
    before = [(r.run_dir / "metrics.jsonl").read_bytes() for r in runs]
    second = run_sweep(runs)
    assert [o.status for o in second] == ["skipped", "skipped"]
    assert [(r.run_dir / "metrics.jsonl").read_bytes() for r in runs] == before
    assert second[0].final["epoch"] == 2

    # An interrupted run (killed after epoch 1's checkpoint: status still "running") is
    # resumed and ends with the metrics of the uninterrupted run (the oracle, done above).
    partial = sweep_runs(tiny(), {"seed": [0]}, tmp_path / "again")[0]

    def crash_at_epoch_2(ctx):
        if ctx.epoch == 2:
            raise KeyboardInterrupt("simulated interruption")
        return {}

    with pytest.raises(KeyboardInterrupt):
        train(partial.config, partial.run_dir, progress=False, callbacks=[crash_at_epoch_2])
    assert run_state(partial) == "partial"
    (out,) = run_sweep([partial])
    assert out.status == "completed"
    assert _strip_times(load_metrics(partial.run_dir)) == _strip_times(
        load_metrics(runs[0].run_dir)
    )


def test_conflicting_folder_fails_that_run_only(tmp_path):
    runs = sweep_runs(tiny(), {"seed": [0, 1]}, tmp_path)
    runs[0].run_dir.mkdir(parents=True)
    (runs[0].run_dir / "notes.txt").write_text("mine")
    outcomes = run_sweep(runs)
    assert outcomes[0].status == "failed" and "run_dir" in outcomes[0].error
    assert outcomes[1].status == "completed"
    assert sorted(p.name for p in runs[0].run_dir.iterdir()) == ["notes.txt"]


def test_parallel_local_sweep_matches_sequential(tmp_path):
    grid = {"seed": [0, 1]}
    par = run_sweep(sweep_runs(tiny(epochs=1), grid, tmp_path / "par"), jobs=2)
    seq = run_sweep(sweep_runs(tiny(epochs=1), grid, tmp_path / "seq"), jobs=1)
    assert [o.status for o in par] == ["completed", "completed"]
    for a, b in zip(par, seq, strict=True):
        assert a.final == b.final
        assert _strip_times(load_metrics(a.run_dir)) == _strip_times(load_metrics(b.run_dir))


def test_ray_backend_without_ray_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kw):
        if name == "ray":
            raise ImportError("no ray here")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    runs = sweep_runs(tiny(), {"seed": [0]}, tmp_path)
    with pytest.raises(ValueError, match=r"robmem\[ray\]"):
        run_sweep(runs, backend="ray")


@pytest.mark.skipif(not HAS_RAY, reason="Ray is an optional extra (pip install 'robmem[ray]')")
def test_ray_backend_runs_and_skips(tmp_path):
    import ray

    try:
        ray.init(local_mode=True, num_cpus=1, include_dashboard=False, ignore_reinit_error=True)
    except RuntimeError:  # Ray >= 2.4x dropped local_mode: a one-machine cluster instead
        ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        runs = sweep_runs(tiny(epochs=1), {"seed": [0, 1]}, tmp_path)
        assert [o.status for o in run_sweep(runs, backend="ray")] == ["completed"] * 2
        assert [o.status for o in run_sweep(runs, backend="ray")] == ["skipped"] * 2
    finally:
        ray.shutdown()


def test_outcome_round_trip():
    o = sweep.SweepOutcome("a", "/x", "failed", error="boom")
    assert sweep.SweepOutcome(**o.to_dict()) == o


def test_local_parallel_runs_are_spread_over_gpus(tmp_path, monkeypatch):
    """With 2 GPUs, run i is pinned to GPU i mod 2 (CUDA_VISIBLE_DEVICES in its worker)."""
    import concurrent.futures

    seen = []

    class FakePool:
        def __init__(self, *a, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, *columns):
            for row in zip(*columns, strict=True):
                seen.append(row[3])
                yield sweep.SweepOutcome(row[0], row[2], "skipped").to_dict()

    monkeypatch.setattr(sweep, "_local_gpu_count", lambda: 2)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", FakePool)
    runs = sweep_runs(tiny(), {"seed": [0, 1, 2]}, tmp_path)
    assert [o.status for o in run_sweep(runs, jobs=3)] == ["skipped"] * 3
    assert seen == ["0", "1", "0"]


def test_execute_run_sets_visible_devices(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    run = sweep_runs(tiny(epochs=1), {"seed": [0]}, tmp_path)[0]
    out = sweep.execute_run(run.name, run.config.to_json(), str(run.run_dir), "3")
    assert out["status"] == "completed"
    import os

    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


SWEEP_KILL_CHILD = """
import os, pathlib, signal, sys
sys.path.insert(0, {repo!r})
from robmem.empirics import trainers
from robmem.bridge import cli

real_save = trainers.save_checkpoint


def save(path, payload):
    out = real_save(path, payload)
    if "seed=1" in str(path) and pathlib.Path(path).name == "last.pt" and payload["epoch"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return out


if sys.argv[1] == "kill":
    trainers.save_checkpoint = save
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_sweep_killed_mid_run_resumes_on_rerun(tmp_path):
    """kill -9 `robmem sweep` inside its second run; the re-run skips the first, resumes the
    second, and the result equals an uninterrupted run of that config."""
    import pathlib
    import signal
    import subprocess
    import sys

    repo = pathlib.Path(__file__).resolve().parents[2]
    script = tmp_path / "child.py"
    script.write_text(SWEEP_KILL_CHILD.format(repo=str(repo)))
    flags = [
        "sweep", "--out", str(tmp_path / "s"), "--seeds", "0,1", "--dataset", "digits",
        "--n-train", "48", "--n-test", "24", "--model", "linear", "--epochs", "2",
        "--batch-size", "24", "--attack-steps", "1", "--eval-attack-steps", "1",
        "--schedule", "constant", "--lr", "0.05", "--num-threads", "1",
    ]  # fmt: skip

    def run(mode):
        return subprocess.run(
            [sys.executable, str(script), mode, *flags],
            capture_output=True, text=True, cwd=repo, timeout=300, check=False,
        )  # fmt: skip

    first = run("kill")
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    second = run("plain")
    assert second.returncode == 0, second.stderr[-2000:]
    assert "skipped   seed=0" in second.stdout and "completed seed=1" in second.stdout
    train(tiny(seed=1), tmp_path / "oracle", progress=False)
    assert _strip_times(load_metrics(tmp_path / "s" / "seed=1")) == _strip_times(
        load_metrics(tmp_path / "oracle")
    )
