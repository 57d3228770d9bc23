"""Data-parallel training (issue 7 §5): 2 gloo processes on CPU equal one process.

Oracle: :func:`robmem.empirics.trainers.train` (the single-process trainer, separate code path) run
with the same config and global batch; metrics and final weights must agree up to float
re-association of the gradient all-reduce.
"""

from __future__ import annotations

import math
import pathlib
import subprocess
import sys

import pytest
import torch

from robmem.empirics.checkpoint import load_checkpoint
from robmem.empirics.config import TrainConfig
from robmem.empirics.distributed import shard_bounds, train_distributed
from robmem.empirics.runs import load_metrics
from robmem.empirics.trainers import train

REPO = pathlib.Path(__file__).resolve().parents[2]
#: Relative tolerance of metrics: the all-reduce sums gradients in another order (float32).
REL_TOL = 1e-4
#: Wall-clock limit of one torchrun launch (two processes importing torch on 2 shared cores).
LAUNCH_TIMEOUT_S = 240


def _config(method: str = "pgd", **kw) -> TrainConfig:
    base = dict(
        dataset="digits",
        n_train=249,  # batches of 64, 64, 64, 57: the ragged last batch splits 29/28
        n_test=64,
        model="mlp",
        method=method,
        epochs=2,
        batch_size=64,
        attack_steps=3,
        eval_attack_steps=2,
        eval_train_size=64,
        schedule="constant",
        lr=0.05,
        num_threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _torchrun(config_path: pathlib.Path, run_dir: pathlib.Path, *extra: str, nproc: int = 2):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        "--nproc_per_node", str(nproc), "-m", "robmem.empirics.distributed",
        "--config", str(config_path), "--run-dir", str(run_dir), "--no-progress", *extra,
    ]  # fmt: skip
    return subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S, check=False
    )


def _assert_rows_close(rows_a: list[dict], rows_b: list[dict]) -> None:
    assert len(rows_a) == len(rows_b)
    for ra, rb in zip(rows_a, rows_b, strict=True):
        assert set(ra) == set(rb)
        for key, vb in rb.items():
            if key.startswith("time_"):
                continue
            va = ra[key]
            if isinstance(vb, float) and va is not None:
                assert math.isclose(va, vb, rel_tol=REL_TOL, abs_tol=1e-6), (key, va, vb)
            else:
                assert va == vb, (key, va, vb)


def _weights(run_dir: pathlib.Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]


def test_shard_bounds_cover_batch_contiguously():
    for n in range(0, 20):
        for world in range(1, 5):
            bounds = shard_bounds(n, world)
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
            sizes = [hi - lo for lo, hi in bounds]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError, match="world_size"):
        shard_bounds(4, 0)


def test_train_distributed_outside_torchrun_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="torchrun"):
        train_distributed(_config(), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_ddp_two_gloo_processes_equal_single_process(tmp_path):
    config = _config("pgd")
    config.save(tmp_path / "config.json")
    proc = _torchrun(tmp_path / "config.json", tmp_path / "ddp")
    assert proc.returncode == 0, proc.stderr[-4000:]
    train(config, tmp_path / "single", progress=False)
    _assert_rows_close(load_metrics(tmp_path / "ddp"), load_metrics(tmp_path / "single"))
    wa, wb = _weights(tmp_path / "ddp"), _weights(tmp_path / "single")
    for key in wb:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


def test_sharded_evaluation_matches_single_process(tmp_path):
    """--shard-eval: every metric equals a single process (the attack starts included)."""
    config = _config("pgd", n_test=63, eval_train_size=61)  # shards of 32/31 and 31/30
    config.save(tmp_path / "config.json")
    proc = _torchrun(tmp_path / "config.json", tmp_path / "ddp", "--shard-eval")
    assert proc.returncode == 0, proc.stderr[-4000:]
    train(config, tmp_path / "single", progress=False)
    _assert_rows_close(load_metrics(tmp_path / "ddp"), load_metrics(tmp_path / "single"))


class _Rank:
    """Rank ``rank`` of ``world`` as :func:`empirics.trainers.evaluate` sees it (no reduce)."""

    def __init__(self, rank: int, world: int) -> None:
        self.rank, self.world = rank, world

    def shard(self, n: int) -> tuple[int, int]:
        return shard_bounds(n, self.world)[self.rank]

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        return t


@pytest.mark.parametrize(("norm", "restarts"), [("inf", 1), ("2", 2)])
def test_sharded_evaluate_sums_to_the_single_process_evaluation(norm, restarts):
    """Three ranks' shares of every evaluation batch (an empty one included) add up to the
    one-process evaluation, example for example, and every rank ends with its RNG state."""
    from robmem.empirics.attacks import PGD
    from robmem.empirics.trainers import evaluate

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    x, y = torch.rand(11, 3, 2, 2), torch.randint(0, 3, (11,))
    attack = PGD(0.3, 0.1, 2, norm=norm, restarts=restarts)
    kw = dict(batch_size=5, y_extra={"other": (y + 1) % 3})
    torch.manual_seed(1)
    whole = evaluate(model, x, y, attack, **kw)
    state = torch.get_rng_state()
    parts = []
    for rank in range(3):
        torch.manual_seed(1)
        parts.append(evaluate(model, x, y, attack, group=_Rank(rank, 3), **kw))
        assert torch.equal(torch.get_rng_state(), state)
    for key, value in whole.items():
        total = sum(p[key] for p in parts)
        if "acc" in key:
            assert round(total * 11) == round(value * 11), key
        assert math.isclose(total, value, rel_tol=1e-6), (key, total, value)


@pytest.mark.slow
def test_ddp_mnist1d_augmentation_equals_single_process(tmp_path):
    """MNIST-1D's own augmentation (circular shift + noise) under DDP, as in one process: the
    DDP loop used to apply the image crop-and-flip to every data set."""
    config = _config(
        "pgd", dataset="mnist1d", n_train=128, n_test=64, eval_train_size=64, augment=True
    )
    config.save(tmp_path / "config.json")
    proc = _torchrun(tmp_path / "config.json", tmp_path / "ddp")
    assert proc.returncode == 0, proc.stderr[-4000:]
    train(config, tmp_path / "single", progress=False)
    _assert_rows_close(load_metrics(tmp_path / "ddp"), load_metrics(tmp_path / "single"))
    wa, wb = _weights(tmp_path / "ddp"), _weights(tmp_path / "single")
    for key in wb:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["trades", "fgsm-rs", "pgd-te"])
def test_ddp_other_methods_equal_single_process(tmp_path, method):
    kw = {"te_start_epoch": 1, "te_end_epoch": 2} if method == "pgd-te" else {}
    config = _config(method, **kw)
    config.save(tmp_path / "config.json")
    proc = _torchrun(tmp_path / "config.json", tmp_path / "ddp")
    assert proc.returncode == 0, proc.stderr[-4000:]
    train(config, tmp_path / "single", progress=False)
    # TRADES' sign-gradient attack amplifies float differences slightly more.
    _assert_rows_close(load_metrics(tmp_path / "ddp"), load_metrics(tmp_path / "single"))


DDP_KILL_CHILD = """
import os, pathlib, signal, sys
sys.path.insert(0, {repo!r})
from robmem.empirics import distributed, trainers

real_save = trainers.save_checkpoint


def save(path, payload):
    out = real_save(path, payload)
    if pathlib.Path(path).name == "last.pt" and payload["epoch"] == 1:
        os.kill(os.getpid(), signal.SIGKILL)  # rank 0 dies right after epoch 1's checkpoint
    return out


trainers.save_checkpoint = save
sys.exit(distributed.main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_killed_ddp_run_resumes_in_a_single_process(tmp_path):
    """kill -9 rank 0 after epoch 1, finish the run in one process: equals one process."""
    config = _config("pgd", epochs=3)
    config.save(tmp_path / "config.json")
    script = tmp_path / "ddp_kill.py"
    script.write_text(DDP_KILL_CHILD.format(repo=str(REPO)))
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), "--config", str(tmp_path / "config.json"), "--run-dir", str(tmp_path / "ddp"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S)
    assert proc.returncode != 0
    assert [r["epoch"] for r in load_metrics(tmp_path / "ddp")] == [1]
    train(config, tmp_path / "ddp", resume=True, progress=False)
    train(config, tmp_path / "single", progress=False)
    _assert_rows_close(load_metrics(tmp_path / "ddp"), load_metrics(tmp_path / "single"))


@pytest.fixture
def single_rank_group(tmp_path):
    """A one-process gloo group inside the test process (no torchrun needed)."""
    import torch.distributed as dist

    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def test_attacks_bypass_the_ddp_wrapper(single_rank_group):
    """Attack and evaluation forwards go to the unwrapped module; the loss goes through DDP."""
    from robmem.empirics.attacks import PGD
    from robmem.empirics.distributed import _AttackAwareDDP

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    ddp = torch.nn.parallel.DistributedDataParallel(module)
    calls = {"ddp": 0}
    ddp.register_forward_pre_hook(lambda *_: calls.__setitem__("ddp", calls["ddp"] + 1))
    model = _AttackAwareDDP(ddp)
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    PGD(0.1, 0.05, 3)(model, x, y)
    with torch.no_grad():
        model(x)
    assert calls["ddp"] == 0
    model(x).sum().backward()
    assert calls["ddp"] == 1
    assert all(p.grad is not None for p in module.parameters())


def test_world_size_one_is_bit_identical_to_train(tmp_path, single_rank_group):
    config = _config("pgd")
    train_distributed(config, tmp_path / "ddp1")
    train(config, tmp_path / "single", progress=False)

    def strip(rows):
        return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]

    assert strip(load_metrics(tmp_path / "ddp1")) == strip(load_metrics(tmp_path / "single"))
    wa, wb = _weights(tmp_path / "ddp1"), _weights(tmp_path / "single")
    assert all(torch.equal(wa[k], wb[k]) for k in wb)


@pytest.mark.slow
def test_missing_select_metric_stops_every_rank(tmp_path):
    """Rank 0's missing-metric error reaches every rank (no rank left in a collective)."""
    config = _config("pgd", epochs=1, select_metric="train_no_such_metric")
    config.save(tmp_path / "config.json")
    proc = _torchrun(tmp_path / "config.json", tmp_path / "ddp")
    assert proc.returncode != 0
    assert proc.stderr.count("is not a metric of this run") == 2, proc.stderr[-4000:]


@pytest.mark.slow
def test_compile_applies_to_the_attacks_under_ddp(tmp_path, single_rank_group):
    """compile=True under DDP: attack and evaluation forwards run the compiled module (the
    training forward stays eager DDP); metrics equal the eager run up to rounding."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    config = _config("pgd", epochs=1, compile=True, compile_mode="max-autotune-no-cudagraphs")
    ddp = train_distributed(config, tmp_path / "ddp1").metrics[-1]
    assert counters["stats"]["unique_graphs"] >= 1
    eager = train(_config("pgd", epochs=1), tmp_path / "eager", progress=False).metrics[-1]
    assert ddp["train_objective"] == pytest.approx(eager["train_objective"], rel=1e-4)
    assert ddp["test_robust_acc"] == pytest.approx(eager["test_robust_acc"], abs=2 / 64)


def test_launcher_user_errors_exit_2(tmp_path, monkeypatch, capsys):
    from robmem.empirics.distributed import main

    with pytest.raises(SystemExit) as info:
        main(["--run-dir", str(tmp_path / "run")])  # no --config, nothing to resume
    assert info.value.code == 2
    (tmp_path / "bad.json").write_text('{"epsilon": -1}')
    assert main(["--config", str(tmp_path / "bad.json"), "--run-dir", str(tmp_path / "r")]) == 2
    monkeypatch.delenv("RANK", raising=False)
    _config().save(tmp_path / "ok.json")
    assert main(["--config", str(tmp_path / "ok.json"), "--run-dir", str(tmp_path / "r")]) == 2
    assert not (tmp_path / "r").exists()


def test_step_totals_stay_on_the_loss_device():
    """Per-step totals are built on the loss's device (``meta`` here: a CPU tensor copied
    in, or a host sync, would show there) and hold the right numbers (CPU)."""
    from robmem.empirics.methods import StepOutput
    from robmem.empirics.trainers import _step_totals

    meta = torch.empty((), device="meta")
    out = StepOutput(meta, None, torch.empty((), dtype=torch.int64, device="meta"))
    row = _step_totals(out, 3)
    assert row.device.type == "meta" and row.dtype == torch.float64 and row.shape == (4,)
    row = _step_totals(StepOutput(torch.tensor(0.5), torch.tensor(2), None), 4)
    assert row.tolist() == [2.0, 2.0, 0.0, 0.0]
    row = _step_totals(StepOutput(torch.tensor(float("nan")), torch.tensor(1), None), 1)
    assert row[1:].tolist() == [1.0, 0.0, 1.0]


@pytest.mark.parametrize(
    ("device", "backend", "expected"),
    [("cuda:1", "nccl", {"device_ids": [1]}), ("cpu", "gloo", {}), ("cuda:0", "gloo", {})],
)
def test_barrier_names_the_gpu_under_nccl_only(monkeypatch, device, backend, expected):
    import torch.distributed as dist

    from robmem.empirics.distributed import TorchGroup

    calls = []
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: backend)
    monkeypatch.setattr(dist, "barrier", lambda **kw: calls.append(kw))
    TorchGroup(0, 1, torch.device(device)).barrier()
    assert calls == [expected]
