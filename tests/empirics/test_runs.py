"""Run directories: kill -9 and resume gives bit-identical metrics; no silent overwrites."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from robmem.empirics.checkpoint import load_checkpoint
from robmem.empirics.config import TrainConfig
from robmem.empirics.runs import load_metrics, load_steps
from robmem.empirics.trainers import train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CONFIG = TrainConfig(
    dataset="digits", n_train=90, n_test=40, model="mlp", model_kwargs={"hidden": [16]},
    method="pgd-te", te_start_epoch=2, te_end_epoch=3, epochs=4, batch_size=32,
    attack_steps=2, eval_attack_steps=2, schedule="cosine", lr=0.1, augment=False,
    label_noise=0.5, num_threads=1,
)  # fmt: skip

# Runs train() in a child process and SIGKILLs it from inside at a chosen point:
# "step": at the N-th optimisation step (mid-epoch); "save": at the N-th checkpoint write
# (after the epoch's rows were appended, before its checkpoint exists).
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from robmem.empirics import trainers
    from robmem.empirics.config import TrainConfig
    config = TrainConfig.from_json(open(sys.argv[1]).read())
    run_dir, mode, n, resume = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1"
    count = [0]
    def wrap(fn):
        def inner(*a, **k):
            count[0] += 1
            if count[0] == n:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*a, **k)
        return inner
    if mode == "step":
        trainers.global_grad_norm = wrap(trainers.global_grad_norm)
    elif mode == "save":
        trainers.save_checkpoint = wrap(trainers.save_checkpoint)
    trainers.train(config, run_dir, resume=resume, progress=False)
    """
)


def _child(tmp_path, run_dir, mode, n, resume):
    cfg = tmp_path / "config.json"
    cfg.write_text(CONFIG.to_json())
    return subprocess.run(
        [sys.executable, "-c", CHILD, str(cfg), str(run_dir), mode, str(n), str(int(resume))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _strip_times(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


@pytest.mark.parametrize(("mode", "n"), [("step", 8), ("save", 2)])
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, mode, n):
    ref = tmp_path / "ref"
    train(CONFIG, ref, progress=False)
    run = tmp_path / "killed"
    killed = _child(tmp_path, run, mode, n, resume=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # step 8 is mid-epoch 3 (3 steps per epoch): epochs 1-2 are checkpointed
    done = load_checkpoint(run / "checkpoints" / "last.pt")["epoch"]
    assert done == 2 if mode == "step" else done == 1
    resumed = _child(tmp_path, run, "none", 0, resume=True)
    assert resumed.returncode == 0, resumed.stderr
    assert _strip_times(load_metrics(run)) == _strip_times(load_metrics(ref))
    assert load_steps(run) == load_steps(ref)
    a = load_checkpoint(run / "checkpoints" / "last.pt")
    b = load_checkpoint(ref / "checkpoints" / "last.pt")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert torch.equal(a["te_bank"], b["te_bank"])
    assert torch.equal(a["train_labels"], b["train_labels"])


def test_existing_run_dir_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="resume"):
        train(CONFIG, run, progress=False)
    assert [p.name for p in run.iterdir()] == ["notes.txt"]


def test_resume_with_a_different_config_names_the_field(tmp_path):
    small = CONFIG.replace(epochs=1)
    train(small, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="epsilon: run has 0.1, given 0.2"):
        train(small.replace(epsilon=0.2), tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    # fields that only change where the run computes may differ
    res = train(small.replace(num_threads=2), tmp_path / "run", resume=True, progress=False)
    assert len(res.metrics) == 1


def test_run_dir_contents(tmp_path):
    res = train(CONFIG.replace(epochs=1), tmp_path / "run", progress=False)
    names = {p.name for p in res.run_dir.iterdir()}
    assert {"config.json", "config.toml", "run.json", "metrics.jsonl", "steps.jsonl",
            "labels.pt", "status.json", "checkpoints"} <= names  # fmt: skip
    assert TrainConfig.load(res.run_dir / "config.toml") == CONFIG.replace(epochs=1)
    info = json.loads((res.run_dir / "run.json").read_text())
    assert info["seeds"] == {"seed": 0, "data_seed": 0, "label_noise_seed": 0}
    assert json.loads((res.run_dir / "status.json").read_text())["state"] == "completed"
    ckpt = load_checkpoint(res.last_checkpoint)
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "te_bank", "train_labels"}
    assert set(ckpt["rng"]) == {"torch", "cuda", "numpy", "python", "generators"}


def test_tensor_metrics_are_written_with_non_finite_values_as_null(tmp_path):
    """A callback may return tensors (on any device, bf16 included) or numpy values; NaN/inf
    among them become null instead of failing the write after a whole epoch of work."""
    import numpy as np

    from robmem.empirics.runs import append_jsonl, read_jsonl, run_info

    path = tmp_path / "m.jsonl"
    row = {
        "a": torch.tensor(float("nan")),
        "b": torch.tensor([1.5, float("inf")], dtype=torch.bfloat16),
        "c": np.float32(2.0),
        "d": torch.tensor(3),
        "e": [0.5, float("nan")],
    }
    append_jsonl(path, [row])
    assert read_jsonl(path) == [{"a": None, "b": [1.5, None], "c": 2.0, "d": 3, "e": [0.5, None]}]
    info = run_info(TrainConfig())
    assert info["device"] == "cpu" and info["gpus"] == [] and "cuda" in info
