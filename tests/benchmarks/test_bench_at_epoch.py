"""benchmarks/bench_at_epoch.py: flags parse, JSON complete, counted FLOPs match the cost model."""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest

pytest.importorskip("torchattacks")

PATH = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "bench_at_epoch.py"


def _module():
    spec = importlib.util.spec_from_file_location("bench_at_epoch", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_at_epoch_json_and_flop_accounting(capsys):
    bench = _module()
    argv = [
        "--model", "lenet5", "--batch-size", "2", "--iters", "1", "--warmup", "0",
        "--steps", "3", "--matmul-size", "64", "--threads", "1", "--precision", "fp32",
        "--no-channels-last",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    f = out["forward_flops_per_image"]
    assert out["cost_model_flops_per_image"] == (2 * 3 + 3) * f
    # Input-only attack gradients: the counted cost is (2K+3)F up to the first layer's
    # unneeded gradients, clearly below the naive (3K+3)F of a weight-gradient backward.
    counted = out["counted_flops_per_image_ours"]
    assert 0.9 * (2 * 3 + 3) * f <= counted <= (2 * 3 + 3) * f * 1.001
    assert counted < 0.9 * (3 * 3 + 3) * f
    for row in ("ours", "torchattacks"):
        assert out[row]["images_per_s"] > 0
        assert out[row]["seconds_per_epoch_50k"] == pytest.approx(50_000 / out[row]["images_per_s"])
    assert out["speedup_vs_torchattacks"] > 0


def test_bench_at_epoch_peak_override_and_bad_flags(capsys):
    bench = _module()
    argv = [
        "--model", "lenet5", "--batch-size", "1", "--iters", "1", "--warmup", "0",
        "--steps", "1", "--peak-tflops", "1.0", "--no-torchattacks", "--threads", "1",
    ]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["peak_flops_per_s"] == 1e12 and out["peak_source"] == "--peak-tflops"
    assert "torchattacks" not in out
    with pytest.raises(SystemExit):
        bench.main(["--batch-size", "0"])
