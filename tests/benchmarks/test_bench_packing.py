"""benchmarks/bench_packing.py: JSON complete, packed runs give the sequential runs' metrics."""

from __future__ import annotations

import json

import pytest
from bench_loader import load_benchmark


def _module():
    return load_benchmark("bench_packing")


def test_packed_sweep_reproduces_the_sequential_one(capsys):
    bench = _module()
    argv = ["--runs", "2", "--n-train", "64", "--n-test", "32", "--batch-size", "32",
            "--same-threads"]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["failed"] == []
    assert out["metrics_compared"] >= 4
    # On CPU with equal thread counts, packing (separate processes) must not change anything.
    assert out["threads_sequential"] == out["threads_packed"]
    assert out["max_abs_metric_difference_seq_vs_packed"] == 0.0
    assert out["speedup_packed_vs_sequential"] == pytest.approx(
        out["sequential_s"] / out["packed_s"]
    )


@pytest.mark.parametrize(
    "argv", [["--runs", "1"], ["--epsilon", "2"], ["--dataset", "imagenet"], ["--epochs", "0"]]
)
def test_bad_flags(argv, capsys):
    with pytest.raises(SystemExit):
        _module().main(argv)
    assert "error" in capsys.readouterr().err
