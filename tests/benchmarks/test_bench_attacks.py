"""Smoke test of benchmarks/bench_attacks.py: every flag parses and the JSON has both rows."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("torchattacks")

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_attacks.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_attacks", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
