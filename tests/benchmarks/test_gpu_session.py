"""benchmarks/gpu_session.py: the tiny CPU mode end to end, the record after every stage,
budget skips, a failing or crashing stage, child timeouts, the carry and the device call."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_session.py"
#: What the device returns (README of the device tool): flat names of these characters.
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")


@pytest.fixture(scope="module")
def gs():
    """The script as a module (registered in sys.modules: its dataclasses need that)."""
    spec = importlib.util.spec_from_file_location("gpu_session", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_session"] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_session", None)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One --tiny session on the CPU: (output folder, record)."""
    tmp = tmp_path_factory.mktemp("gpu_session")
    out = tmp / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--work-dir", str(tmp / "w")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return out, json.loads((out / "gpu_session.json").read_text()), done.stdout


def test_tiny_session_records_every_stage_and_returns_few_flat_files(gs, tiny):
    out, record, stdout = tiny
    assert record["complete"] is True and record["tiny"] is True
    assert record["stage_order"] == list(gs.STAGE_NAMES)
    for name in gs.STAGE_NAMES:
        entry = record["stages"][name]
        assert entry["status"] in ("ok", "skipped"), (name, entry)
        assert f"stage {name}: " in stdout  # one progress line per stage
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert 0 < len(files) <= 8
    assert all(p.parent == out and NAME_RE.match(p.name) for p in files)
    assert {p.name for p in files} <= set(gs.OUTPUT_FILES)
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temp files


def test_tiny_probe_and_speed_read_back_what_was_measured(gs, tiny):
    import torch

    out, record, _ = tiny
    probe = record["stages"]["probe"]["result"]
    assert probe["torch"] == torch.__version__
    assert probe["cuda_available"] == torch.cuda.is_available()
    assert set(probe["modules"]) == set(gs.PROBE_IMPORTS) | set(gs.PROBE_LOOKUPS)
    assert "nvidia_smi" in probe

    speed = record["stages"]["speed"]["result"]
    bench = json.loads((out / speed["file"]).read_text())  # the benchmark's own JSON
    assert bench["complete"] and speed["complete"]
    assert set(speed["variants"]) == {"fp32", "bf16-cl", "torchattacks-fp32"}
    for label, row in speed["variants"].items():
        side, name = ("torchattacks", label[13:]) if label.startswith("torchattacks-") else (
            "ours", label
        )  # fmt: skip
        raw = bench[side][name]
        assert row["seconds_per_epoch_50k"] == raw["seconds_per_epoch_50k"] > 0
        assert row["seconds_per_epoch_50k"] == pytest.approx(50_000 / row["images_per_s"])
        assert row["ratio_to_nominal_floor"] == raw["ratio_to_nominal_floor"]
    goal = speed["goal"]
    best = min(("fp32", "bf16-cl"), key=lambda k: bench["ours"][k]["seconds_per_epoch_50k"])
    assert goal["best_variant"] == best
    assert goal["applies"] is False and goal["pass"] is False  # CPU toy size: not the goal


def test_tiny_cuda_tests_science_and_the_compile_skip(gs, tiny):
    import torch

    out, record, _ = tiny
    cuda = record["stages"]["cuda_tests"]["result"]
    assert cuda["files"] == ["tests/empirics/test_cuda_paths.py"]
    assert cuda["counts"]["failed"] == cuda["counts"]["errors"] == 0
    if not torch.cuda.is_available():  # on a CPU every cuda test is skipped, none fails
        assert cuda["counts"]["passed"] == 0 and cuda["counts"]["skipped"] > 0
    assert "skipped" in (out / gs.CUDA_LOG).read_text()

    compile_ = record["stages"]["speed_compile"]
    assert compile_["status"] == "skipped" and "estimate 150 s" in compile_["reason"]

    science = record["stages"]["science"]["result"]
    assert science["tier"] == "smoke" and science["device"] == "cpu"
    groups = science["groups"]
    assert list(groups) == ["-".join(g) for g in gs.TINY_SCIENCE_GROUPS]
    with tarfile.open(out / science["file"]) as tar:
        for name, group in groups.items():
            assert group["status"] == "ok"
            member = tar.extractfile(f"report-smoke-{name}/report.json")
            report = json.loads(member.read())
            assert {c["id"]: c["verdict"] for c in report["claims"]} == {
                cid: v["verdict"] for cid, v in group["verdicts"].items()
            }
    assert all(
        v["verdict"] == "pipeline checked (no verdict)"
        for g in groups.values()
        for v in g["verdicts"].values()
    )


def _ctx(gs, tmp_path):
    args = argparse.Namespace(tiny=True, device="cpu")
    (tmp_path / "w").mkdir(exist_ok=True)
    return gs.SessionContext(args, tmp_path, tmp_path / "w", time.monotonic(), dict(os.environ))


def test_record_is_saved_after_each_stage_with_errors_and_budget_skips(gs, tmp_path):
    path = tmp_path / gs.SESSION_JSON

    def boom(ctx, budget):
        raise RuntimeError("kaput")

    def check(ctx, budget):  # what a later stage finds on disk
        return {k: v["status"] for k, v in json.loads(path.read_text())["stages"].items()}

    stages = [
        gs.Stage("a", lambda ctx, budget: {"x": 1}, estimate_s=0),
        gs.Stage("boom", boom, estimate_s=0),
        gs.Stage("check", check, estimate_s=0),
        gs.Stage("too_long", lambda ctx, budget: {}, estimate_s=1e6),
        gs.Stage("reserved", lambda ctx, budget: {}, estimate_s=1, reserve_s=1e6),
        gs.Stage("capped", lambda ctx, budget: {"budget": budget}, estimate_s=0, max_s=7),
        gs.Stage("ruled_out", lambda ctx, budget: {}, estimate_s=0, skip_reason="no CIFAR"),
    ]
    gs.run_session(stages, _ctx(gs, tmp_path), budget_s=100)
    record = json.loads(path.read_text())
    st = record["stages"]
    assert record["complete"] and record["stage_order"] == [s.name for s in stages]
    assert st["a"]["status"] == "ok" and st["a"]["result"] == {"x": 1}
    assert st["boom"]["status"] == "error" and st["boom"]["reason"] == "RuntimeError: kaput"
    assert "kaput" in st["boom"]["traceback"]
    assert st["check"]["result"] == {"a": "ok", "boom": "error", "check": "running"}
    assert (
        st["too_long"]["status"] == "skipped" and "estimate 1000000 s" in st["too_long"]["reason"]
    )
    assert st["reserved"]["status"] == "skipped" and "reserving" in st["reserved"]["reason"]
    assert st["capped"]["status"] == "ok" and st["capped"]["result"]["budget"] == 7
    assert st["ruled_out"] == {**st["ruled_out"], "status": "skipped", "reason": "no CIFAR"}


def test_a_crash_inside_a_stage_leaves_the_earlier_stages_on_disk(gs, tmp_path):
    def crash(ctx, budget):
        raise KeyboardInterrupt  # not an Exception: the session itself stops here

    stages = [gs.Stage("a", lambda ctx, budget: {"x": 1}, 0), gs.Stage("crash", crash, 0)]
    with pytest.raises(KeyboardInterrupt):
        gs.run_session(stages, _ctx(gs, tmp_path), budget_s=100)
    record = json.loads((tmp_path / gs.SESSION_JSON).read_text())
    assert record["stages"]["a"]["result"] == {"x": 1}
    assert record["stages"]["crash"]["status"] == "running" and not record["complete"]


def test_stage_errors_keep_their_partial_result(gs, tmp_path):
    def partial(ctx, budget):
        raise gs.StageTimeout("stopped", {"measured": 3})

    gs.run_session([gs.Stage("p", partial, 0)], _ctx(gs, tmp_path), budget_s=100)
    entry = json.loads((tmp_path / gs.SESSION_JSON).read_text())["stages"]["p"]
    assert entry["status"] == "timeout" and entry["result"] == {"measured": 3}


def test_a_child_past_its_budget_is_stopped_with_its_workers(gs, tmp_path):
    ctx = _ctx(gs, tmp_path)
    code = (
        "import subprocess, sys, time; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    log = tmp_path / "child.log"
    rc, wall = ctx.run_child([sys.executable, "-c", code], 3.0, log)
    assert rc is None  # stopped, not finished
    worker = int(log.read_text().splitlines()[-1])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the worker is gone (or a zombie awaiting its reaper)
        status = pathlib.Path(f"/proc/{worker}/status")
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"worker {worker} of the stopped child still runs")


def test_junit_counts(gs, tmp_path):
    xml = tmp_path / "j.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="m" name="ok"/>'
        '<testcase classname="m" name="bad"><failure message="assert 1 == 2"/></testcase>'
        '<testcase classname="m" name="err"><error message="fixture"/></testcase>'
        '<testcase classname="m" name="skip"><skipped message="needs a CUDA GPU"/></testcase>'
        '<testcase classname="m" name="skip2"><skipped/></testcase>'
        "</testsuite></testsuites>"
    )
    parsed = gs.parse_junit(xml)
    assert parsed["counts"] == {"passed": 1, "failed": 1, "errors": 1, "skipped": 2}
    assert parsed["failures"] == [
        {"test": "m::bad", "message": "assert 1 == 2"},
        {"test": "m::err", "message": "fixture"},
    ]


@pytest.mark.parametrize(
    "seconds, ratio, passes", [(4.0, 2.5, True), (6.0, 2.5, False), (4.0, 3.5, False)]
)
def test_speed_goal(gs, seconds, ratio, passes):
    row = {"seconds_per_epoch_50k": seconds, "ratio_to_nominal_floor": ratio,
           "ratio_to_flop_floor": ratio, "images_per_s": 50_000 / seconds}  # fmt: skip
    bench = {"ours": {"bf16-cl": row, "fp32": {**row, "seconds_per_epoch_50k": 99.0},
                      "bf16-cl-compile": {"error": "RuntimeError: x"}}}  # fmt: skip
    out = gs.speed_summary(bench, goal_applies=True)
    assert out["goal"]["best_variant"] == "bf16-cl" and out["goal"]["pass"] is passes
    assert out["variants"]["bf16-cl-compile"] == {"error": "RuntimeError: x"}
    assert gs.speed_summary(bench, goal_applies=False)["goal"]["pass"] is False


def test_gpu_tier_science_is_refused_offline_and_cpu_full_is_not(gs):
    assert "cifar10" in gs.science_problem("gpu", ["E3", "E4"])
    assert gs.science_problem("cpu-full", ["E3", "E4", "E6", "B1"]) is None
    assert gs.science_problem("gpu-offline", ["E3", "E4", "E6", "B1"]) is None


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--budget-s", "0"], "--budget-s"),
        (["--stages", "probe,nope"], "--stages"),
        (["--stages", "probe,probe"], "--stages"),
        (["--science-tier", "huge"], "--science-tier"),
        (["--compile-variants", "fp32"], "--compile-variants"),
        (["--device", "tpu"], "--device"),
        (["--science-jobs", "-1"], "--science-jobs"),
    ],
)
def test_bad_arguments_name_the_flag(gs, argv, name, capsys):
    with pytest.raises(SystemExit):
        gs.parse_args(argv)
    assert name in capsys.readouterr().err


def test_prepare_builds_the_carry_and_prints_the_device_call(gs, tmp_path):
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    (mnist / "t10k-labels-idx1-ubyte.gz").write_bytes(b"labels")
    carry = tmp_path / "gpu_carry"
    info = gs.prepare(carry_dir=carry, mnist_dir=mnist, packages=False)
    copied = carry / gs.CARRY_MNIST / "t10k-labels-idx1-ubyte.gz"
    assert copied.read_bytes() == b"labels"
    call = info["run_call"]
    assert len(call["command"]) <= 2000 and call["carry"] == ["gpu_carry"]
    assert gs.DEFAULT_BUDGET_S + 30 <= call["timeout_s"] <= 600
    assert "benchmarks/gpu_session.py" in call["command"] and '"$OUT"' in call["command"]
    # the real carry folder is git-ignored (it must travel only through `carry`)
    ignored = subprocess.run(["git", "check-ignore", "-q", "gpu_carry/"], cwd=ROOT)
    assert ignored.returncode == 0
