"""Smoke test of benchmarks/bench_attacks.py: every flag parses and the JSON has both rows."""

from __future__ import annotations

import json

import pytest
from bench_loader import load_benchmark

pytest.importorskip("torchattacks")


def _module():
    return load_benchmark("bench_attacks")


def test_bench_attacks_prints_both_throughputs_and_ratio(capsys):
    bench = _module()
    argv = [
        "--model", "lenet5", "--shape", "1,8,8", "--classes", "3", "--batch", "4",
        "--steps", "1", "--eps", "0.1", "--alpha", "0.05", "--device", "cpu",
        "--precision", "bf16", "--channels-last", "--keep-best", "--repeats", "1",
        "--warmup", "0", "--threads", "1", "--seed", "1",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["batch"] == 4 and out["in_shape"] == [1, 8, 8] and out["eps"] == 0.1
    assert out["ours"]["options"] == {"precision": "bf16", "channels_last": True, "keep_best": True}
    assert out["baseline"] == f"torchattacks {out['torchattacks']}"
    for key in ("torchattacks_pgd", "ours", "ours_parity"):
        assert out[key]["images_per_s"] > 0
    assert out["ratio"] == pytest.approx(
        out["torchattacks_pgd"]["seconds_per_batch"] / out["ours"]["seconds_per_batch"]
    )


def test_bench_attacks_rejects_bad_shape():
    bench = _module()
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--shape", "a,b"])
    with pytest.raises(ValueError, match="--batch"):
        bench.run(bench.build_parser().parse_args(["--batch", "0"]))


def test_bench_attacks_runs_without_torchattacks(capsys, monkeypatch):
    """A GPU image without torchattacks times the restated torchattacks loop instead;
    ``--no-torchattacks`` times ours only (baseline fields null)."""
    import builtins

    real_import = builtins.__import__

    def no_torchattacks(name, *args, **kwargs):
        if name == "torchattacks":
            raise ImportError("no torchattacks here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torchattacks)
    bench = _module()
    argv = [
        "--model", "linear", "--shape", "1,4,4", "--classes", "3", "--batch", "4", "--steps", "1",
        "--repeats", "1", "--warmup", "0",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["torchattacks"] is None and out["baseline"].startswith("restated")
    assert out["torchattacks_pgd"]["images_per_s"] > 0 and out["ratio"] > 0
    assert bench.main([*argv, "--no-torchattacks"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"] is None and out["torchattacks_pgd"] is None and out["ratio"] is None
    assert out["ours"]["images_per_s"] > 0 and out["ours_parity"]["images_per_s"] > 0
