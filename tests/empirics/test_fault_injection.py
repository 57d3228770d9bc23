"""Fault injection (issue 7 §1, §4): kill -9 a training run anywhere, then resume.

Every test runs the real trainer in a child process and kills it with SIGKILL at a chosen
point: inside the attack, in the middle of a checkpoint write (a torn temp file), right after
the atomic rename, while a metrics row is half written, between epochs, and at random
wall-clock times from outside. The run is then resumed and its metrics must equal those of an
uninterrupted run (the oracle, computed once in this process) bit for bit on CPU (``time_*``
fields aside). Separately, corrupted and malicious checkpoint files must be refused with a
clear error and never unpickled, and a torn trailing metrics line must never break a reader.

Kill points are chosen with a seeded RNG (:data:`FAULT_SEED`), so a failure is reproducible.
"""

from __future__ import annotations

import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from robmem.bridge import cli
from robmem.empirics import runs
from robmem.empirics.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from robmem.empirics.config import TrainConfig
from robmem.empirics.trainers import train

REPO = pathlib.Path(__file__).resolve().parents[2]
FAULT_SEED = 20261122
#: Limit for one child run (torch import + a 3-epoch tiny run on a loaded 2-core machine).
CHILD_TIMEOUT_S = 180

CONFIG = TrainConfig(
    dataset="digits", n_train=96, n_test=32, model="mlp", method="pgd", epochs=3,
    batch_size=32, attack_steps=2, eval_attack_steps=2, schedule="constant", lr=0.05,
    num_threads=1, select_metric="train_robust_acc",
)  # fmt: skip
STEPS_PER_EPOCH = 3  # 96 / 32

# The child: trains CONFIG in RUN_DIR (resume when asked) after installing one fault hook that
# SIGKILLs the process itself at the chosen point: exactly what an external `kill -9` at that
# instant does, without the race of timing it from outside.
CHILD = textwrap.dedent(
    """
    import os, signal, sys, pathlib
    sys.path.insert(0, {repo!r})
    import torch
    torch.set_num_threads(1)
    from robmem.empirics import attacks, checkpoint, runs, trainers
    from robmem.empirics.config import TrainConfig

    run_dir, fault, at, resume = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    config = TrainConfig.from_json(pathlib.Path(sys.argv[5]).read_text())
    counter = {{"n": 0}}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def hit():
        counter["n"] += 1
        return counter["n"] == at

    if fault == "attack":  # inside the training attack's PGD iterations
        real_step = attacks.PGD._step
        def step(self, *a, **k):
            if hit():
                die()
            return real_step(self, *a, **k)
        attacks.PGD._step = step
    elif fault == "torn-checkpoint":  # half of a checkpoint's bytes written, then killed
        real_open = open
        class Torn:
            def __init__(self, fh): self.fh = fh
            def __enter__(self): return self
            def __exit__(self, *exc): return self.fh.__exit__(*exc)
            def write(self, data):
                self.fh.write(data[: len(data) // 2]); self.fh.flush(); os.fsync(self.fh.fileno())
                die()
            def __getattr__(self, name): return getattr(self.fh, name)
        def torn_open(path, mode="r", *a, **k):
            fh = real_open(path, mode, *a, **k)
            if "w" in mode and ".pt.tmp" in str(path) and hit():
                return Torn(fh)
            return fh
        checkpoint.open = torn_open
    elif fault == "after-rename":  # new checkpoint in place, directory not yet fsynced
        real_fsync_dir = checkpoint._fsync_dir
        def fsync_dir(folder):
            if pathlib.Path(folder).name == "checkpoints" and hit():
                die()
            return real_fsync_dir(folder)
        checkpoint._fsync_dir = fsync_dir
    elif fault == "torn-metrics":  # half of a metrics row appended, then killed
        real_append = runs.append_jsonl
        def append(path, rows):
            rows = list(rows)
            if pathlib.Path(path).name == "metrics.jsonl" and hit():
                text = "".join(__import__("json").dumps(r) + "\\n" for r in rows)
                with open(path, "a") as fh:
                    fh.write(text[: len(text) // 2]); fh.flush(); os.fsync(fh.fileno())
                die()
            return real_append(path, rows)
        runs.append_jsonl = append
    elif fault == "between-epochs":  # after epoch `at`'s checkpoint, before the next epoch
        real_save = trainers.save_checkpoint
        def save(path, payload):
            out = real_save(path, payload)
            if pathlib.Path(path).name == "last.pt" and hit():
                die()
            return out
        trainers.save_checkpoint = save
    elif fault == "evaluation":  # inside the per-epoch robust evaluation
        real_eval = trainers.evaluate
        def evaluate(*a, **k):
            if hit():
                die()
            return real_eval(*a, **k)
        trainers.evaluate = evaluate
    elif fault == "run-creation":  # the run folder exists, its config.json not yet
        real_write = checkpoint.atomic_write_bytes
        def write(path, data):
            if pathlib.Path(path).name == "config.json" and hit():
                die()
            return real_write(path, data)
        runs.atomic_write_bytes = write
    elif fault == "slow":  # no fault: every attack step sleeps, so outside kills land mid-run
        import time
        real_step = attacks.PGD._step
        def step(self, *a, **k):
            time.sleep(at / 1000.0)
            return real_step(self, *a, **k)
        attacks.PGD._step = step
    elif fault != "none":
        raise SystemExit("unknown fault " + fault)
    trainers.train(config, run_dir, resume=resume, progress=False)
    """
)


def _child(tmp: pathlib.Path, run_dir: pathlib.Path, fault: str, at: int, resume: bool):
    script = tmp / "child.py"
    script.write_text(CHILD.format(repo=str(REPO)))
    cfg = tmp / "config.json"
    cfg.write_text(CONFIG.to_json())
    return subprocess.Popen(
        [sys.executable, str(script), str(run_dir), fault, str(at), "1" if resume else "0",
         str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The oracle: the same config trained once, uninterrupted, in this process."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    train(CONFIG, run_dir, progress=False)
    return {
        "metrics": _strip(runs.load_metrics(run_dir)),
        "steps": runs.load_steps(run_dir),
        "weights": load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"],
        "dir": run_dir,
    }


def _assert_equals_reference(run_dir: pathlib.Path, reference: dict) -> None:
    assert _strip(runs.load_metrics(run_dir)) == reference["metrics"]
    assert runs.load_steps(run_dir) == reference["steps"]
    weights = load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"]
    for key, value in reference["weights"].items():
        assert torch.equal(weights[key], value), key
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed"
    # Temp files of writes torn by a kill are removed when the run resumes.
    stale = [p.name for p in run_dir.rglob(".*.tmp-*")]
    assert not stale, stale


_RNG = random.Random(FAULT_SEED)
# (fault, which occurrence to kill at). Occurrences drawn from the seeded RNG within the run.
ATTACK_STEPS_TOTAL = CONFIG.epochs * STEPS_PER_EPOCH * CONFIG.attack_steps
_SLOW = pytest.mark.slow
FAULTS = [
    ("attack", _RNG.randint(1, ATTACK_STEPS_TOTAL), ()),
    ("torn-checkpoint", _RNG.randint(2, CONFIG.epochs), ()),  # >= 2: an older good one exists
    ("torn-checkpoint", 1, _SLOW),  # the very first checkpoint torn: resume starts from scratch
    ("after-rename", _RNG.randint(1, CONFIG.epochs), _SLOW),
    ("torn-metrics", _RNG.randint(1, CONFIG.epochs), ()),
    ("between-epochs", _RNG.randint(1, CONFIG.epochs - 1), _SLOW),
    ("evaluation", _RNG.randint(1, 2 * CONFIG.epochs), _SLOW),
    ("run-creation", 1, ()),
]


@pytest.mark.parametrize(
    ("fault", "at"),
    [pytest.param(f, a, marks=m, id=f"{f}@{a}") for f, a, m in FAULTS],
)
def test_kill9_then_resume_equals_uninterrupted(tmp_path, reference, fault, at):
    run_dir = tmp_path / "run"
    proc = _child(tmp_path, run_dir, fault, at, resume=False)
    _, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    if (run_dir / "status.json").exists():  # absent when killed while creating the run
        status = json.loads((run_dir / "status.json").read_text())
        assert status["state"] == "running"  # a killed run is never marked completed
    last = run_dir / "checkpoints" / "last.pt"
    if last.exists():
        load_checkpoint(last)  # whatever is at the final name is a complete, verified file
    # Resume through the CLI, the way a user resumes (in this process: no second torch import).
    argv = ["train", "--run-dir", str(run_dir), "--resume", "--no-progress"]
    if not (run_dir / "config.json").exists():  # killed before the run stored its config
        argv += ["--config", str(tmp_path / "config.json")]
    assert cli.main(argv) == 0
    _assert_equals_reference(run_dir, reference)


@pytest.mark.slow
def test_external_kill9_at_random_times_then_resume(tmp_path, reference):
    """kill -9 from outside at seeded random wall-clock times (3 kills), then let it finish."""
    rng = random.Random(FAULT_SEED + 1)
    run_dir = tmp_path / "run"
    n_kills = 3
    epochs_at_kill = []
    kills = 0
    for attempt in range(n_kills + 1):
        # 150 ms per attack step: a run lasts ~5 s after the ~3 s torch import.
        proc = _child(tmp_path, run_dir, "slow", 150, resume=attempt > 0)
        if attempt < n_kills:
            deadline = time.monotonic() + rng.uniform(3.0, 8.0)
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
        proc.communicate(timeout=CHILD_TIMEOUT_S)
        epochs_at_kill.append(len(runs.load_metrics(run_dir)))
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL
    assert kills >= 1, epochs_at_kill
    _assert_equals_reference(run_dir, reference)
    print(f"kills={kills} epochs completed after each attempt: {epochs_at_kill}")


# ------------------------------------------------------------------- corrupted checkpoints
def _finished_copy(reference: dict, tmp_path: pathlib.Path) -> pathlib.Path:
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(reference["dir"], dst)
    return dst


@pytest.mark.parametrize("damage", ["flip-byte", "truncate", "empty", "no-trailer"])
def test_corrupted_checkpoint_is_refused_with_a_clear_error(tmp_path, reference, damage, capsys):
    run_dir = _finished_copy(reference, tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    raw = bytearray(last.read_bytes())
    if damage == "flip-byte":
        raw[len(raw) // 3] ^= 0xFF
    elif damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "empty":
        raw = bytearray()
    else:
        raw = raw[: raw.rfind(b"\nROBMEM-SHA256:")]  # a bare torch.save file
    last.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="last.pt") as info:
        load_checkpoint(last)
    assert "checksum" in str(info.value)
    # Resuming must stop with that error and leave every file as it was.
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    cfg = TrainConfig.load(run_dir / "config.json")
    with pytest.raises(CheckpointError):
        train(cfg, run_dir, resume=True, progress=False)
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] in ("running", "completed")
    for path, data in before.items():
        if path.name != "status.json":
            assert path.read_bytes() == data, path
    # The CLI: exit code 2, one line naming the file.
    assert cli.main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "last.pt" in err[0], err


class _Marker:
    """Unpickling this would create a marker file (a stand-in for arbitrary code)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.path),))


def test_malicious_pickle_with_valid_checksum_is_refused(tmp_path):
    """An attacker can compute SHA-256 too: safety comes from weights_only=True, not the sum."""
    import hashlib
    import io

    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"model": {}, "evil": _Marker(str(marker))}, buf)
    body = buf.getvalue()
    path = tmp_path / "evil.pt"
    path.write_bytes(body + b"\nROBMEM-SHA256:" + hashlib.sha256(body).hexdigest().encode())
    # Sanity check of the test itself: a plain unsafe load *would* run the payload.
    torch.load(io.BytesIO(body), weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(CheckpointError, match="evil.pt") as info:
        load_checkpoint(path)
    assert "weights_only" in str(info.value)
    assert not marker.exists()


def test_malicious_checkpoint_in_a_run_is_refused_by_the_cli(tmp_path, reference):
    import hashlib
    import io

    run_dir = _finished_copy(reference, tmp_path)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    torch.save({"epoch": 1, "evil": _Marker(str(marker))}, buf)
    body = buf.getvalue()
    last = run_dir / "checkpoints" / "last.pt"
    last.write_bytes(body + b"\nROBMEM-SHA256:" + hashlib.sha256(body).hexdigest().encode())
    assert cli.main(["train", "--run-dir", str(run_dir), "--resume", "--no-progress"]) == 2
    assert not marker.exists()


def test_every_torch_load_in_the_package_is_weights_only():
    """Static check: no ``torch.load`` in library code without ``weights_only=True``."""
    import re

    offenders = []
    for folder in ("theory", "empirics", "bridge", "benchmarks"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            for match in re.finditer(r"torch\.load\(", text):
                depth, end = 1, match.end()
                while depth and end < len(text):
                    depth += {"(": 1, ")": -1}.get(text[end], 0)
                    end += 1
                call = text[match.start() : end]
                if "weights_only=True" not in call:
                    offenders.append(f"{path.relative_to(REPO)}: {call}")
    assert not offenders, offenders


def test_save_checkpoint_round_trip_and_no_temp_left(tmp_path):
    payload = {"w": torch.arange(5.0), "epoch": 3, "rng": [1, 2, (3, 4)]}
    save_checkpoint(tmp_path / "c.pt", payload)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]
    out = load_checkpoint(tmp_path / "c.pt")
    assert torch.equal(out["w"], payload["w"]) and out["epoch"] == 3


# ------------------------------------------------------------------- torn metrics lines
@pytest.mark.parametrize("tail", ['{"epoch": 3, "train_cl', "{", '{"epoch": 3}garbage', "\x00\x00"])
def test_partial_trailing_metrics_line_never_breaks_the_reader(tmp_path, tail):
    path = tmp_path / "metrics.jsonl"
    runs.append_jsonl(path, [{"epoch": 1, "a": 0.5}, {"epoch": 2, "a": float("nan")}])
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(tail)
    rows = runs.read_jsonl(path)
    assert rows == [{"epoch": 1, "a": 0.5}, {"epoch": 2, "a": None}]
    assert runs.load_metrics(tmp_path) == rows


# ------------------------------------------------------------------- interrupted report
REPORT_CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, pathlib
    sys.path.insert(0, {repo!r})
    from robmem.bridge.cache import RunCache
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.runs import load_metrics
    from robmem.empirics.trainers import train

    root, kill_in = pathlib.Path(sys.argv[1]), sys.argv[2]
    cache = RunCache(root / "cache")
    log = root / "executed.txt"

    def job(name, seed):
        config = TrainConfig.from_json({config!r}).replace(seed=seed, epochs=1)

        def fn(folder):
            with open(log, "a") as fh:
                fh.write(name + "\\n")
            if name == kill_in:
                os.kill(os.getpid(), signal.SIGKILL)
            train(config, folder / "train", progress=False)
            return {{"final": load_metrics(folder / "train")[-1]["train_robust_acc"]}}

        return cache.get_or_run(name, config.to_dict(), fn)

    out = {{n: job(n, s) for n, s in (("run-a", 0), ("run-b", 1), ("run-c", 2))}}
    (root / "report.json").write_text(json.dumps({{"results": out, "hits": cache.hits}}))
    """
)


def test_interrupted_report_rerun_reuses_finished_runs(tmp_path):
    script = tmp_path / "report_child.py"
    script.write_text(REPORT_CHILD.format(repo=str(REPO), config=CONFIG.to_json()))

    def run(kill_in: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), str(tmp_path), kill_in],
            capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False,
        )  # fmt: skip

    first = run("run-c")  # killed -9 while the third run executes
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not (tmp_path / "report.json").exists()
    second = run("")
    assert second.returncode == 0, second.stderr[-3000:]
    executed = (tmp_path / "executed.txt").read_text().split()
    assert executed == ["run-a", "run-b", "run-c", "run-c"]  # a and b were not re-run
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["hits"]) == 2
    third = run("")
    assert third.returncode == 0
    assert (tmp_path / "executed.txt").read_text().split() == executed  # all cached now


REAL_REPORT_CHILD = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    sys.path.insert(0, {repo!r})
    from robmem.empirics import trainers
    from robmem.bridge import cli

    real_train = trainers.train

    def kill_at_epoch_3(ctx):
        if ctx.epoch == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return {{}}

    def train(config, run_dir, **kw):
        if "rl-trades" in str(run_dir):  # the third run of claim E3 at the smoke tier
            kw["callbacks"] = [*kw.get("callbacks", ()), kill_at_epoch_3]
        return real_train(config, run_dir, **kw)

    if sys.argv[1] == "kill":
        trainers.train = train
    sys.exit(cli.main(sys.argv[2:]))
    """
)


@pytest.mark.slow
def test_killed_robmem_report_rerun_reuses_finished_runs(tmp_path):
    """The real ``robmem report`` (claim E3, smoke tier) killed -9 in epoch 3 of its third run:
    the finished runs are reused, the half-finished one is resumed (not deleted)."""
    script = tmp_path / "report_child.py"
    script.write_text(REAL_REPORT_CHILD.format(repo=str(REPO)))
    cache = tmp_path / "cache"
    argv = ["report", "--tier", "smoke", "--claims", "E3", "--out", str(tmp_path / "report"),
            "--cache-dir", str(cache), "--jobs", "1"]  # fmt: skip

    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(script), mode, *argv],
            capture_output=True, text=True, cwd=REPO, timeout=CHILD_TIMEOUT_S, check=False,
        )  # fmt: skip

    first = run("kill")
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    done = [p for p in cache.iterdir() if (p / "result.json").exists()]
    assert sorted(p.name.startswith("rl-pgd") for p in done) == [True, True]
    stamp = {p: (p / "result.json").stat().st_mtime_ns for p in done}
    (half,) = [p for p in cache.iterdir() if p.name.startswith("rl-trades-b6-s0")]
    rows_before = (half / "train" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows_before] == [1, 2]
    second = run("plain")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming the half-finished run" in second.stderr
    for p, mtime in stamp.items():
        assert (p / "result.json").stat().st_mtime_ns == mtime  # reused, not re-run
    rows_after = (half / "train" / "metrics.jsonl").read_text().splitlines()
    assert rows_after[:2] == rows_before  # resumed from its checkpoint, not started afresh
    assert [json.loads(r)["epoch"] for r in rows_after] == [1, 2, 3, 4]
    assert len([p for p in cache.iterdir() if (p / "result.json").exists()]) == 4
    assert (tmp_path / "report" / "index.html").exists()
