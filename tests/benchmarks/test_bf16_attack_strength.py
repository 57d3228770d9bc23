"""benchmarks/bf16_attack_strength.py: JSON complete and internally consistent; bad flags."""

from __future__ import annotations

import json

import pytest
from bench_loader import load_benchmark


def _module():
    return load_benchmark("bf16_attack_strength")


def test_report_is_consistent(capsys):
    assert _module().main(["--epochs", "2", "--n-test", "100", "--eval-steps", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["models"]) == {"trained_fp32", "trained_bf16"}
    for row in out["models"].values():
        n = row["n_test"]
        assert n == 100
        diff = row["robust_acc_bf16_attack"] - row["robust_acc_fp32_attack"]
        assert row["bf16_minus_fp32"] == pytest.approx(diff)
        # A change in robust accuracy needs at least that many changed verdicts.
        assert row["verdicts_differing"] >= round(abs(diff) * n)
        assert 0 <= row["robust_acc_fp32_attack"] <= row["clean_acc"] + 0.05
    assert out["models"]["trained_bf16"]["training_precision"] == "bf16"
    for row in out["models"].values():
        assert row["trivial_model"] == (row["clean_acc"] <= row["majority_class_rate"] + 0.01)


def test_the_same_attack_twice_gives_the_same_verdicts():
    import torch

    from robmem.empirics.models import build_model

    bench = _module()
    torch.manual_seed(0)
    model = build_model("mlp", 10, (64,), hidden=[32]).eval()
    x, y = torch.rand(50, 64), torch.randint(0, 10, (50,))
    kw = dict(eps=0.2, steps=5, amp_dtype=None, channels_last=False, seed=3, batch_size=16)
    a, b = bench.robust_verdicts(model, x, y, **kw), bench.robust_verdicts(model, x, y, **kw)
    assert torch.equal(a, b) and a.dtype == torch.bool and a.shape == (50,)


@pytest.mark.parametrize("argv", [["--epsilon", "0"], ["--epochs", "0"], ["--eval-steps", "0"]])
def test_bad_flags(argv, capsys):
    with pytest.raises(SystemExit):
        _module().main(argv)
    assert "error" in capsys.readouterr().err
