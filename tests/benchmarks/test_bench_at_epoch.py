"""benchmarks/bench_at_epoch.py: flags parse, JSON complete, counted FLOPs match the cost model."""

from __future__ import annotations

import json

import pytest
from bench_loader import load_benchmark

pytest.importorskip("torchattacks")

SMALL = ["--model", "lenet5", "--iters", "1", "--warmup", "0", "--threads", "1"]


def _module():
    return load_benchmark("bench_at_epoch")


def test_bench_at_epoch_json_and_flop_accounting(capsys):
    bench = _module()
    argv = [*SMALL, "--batch-size", "2", "--steps", "3", "--matmul-size", "64",
            "--variants", "fp32,bf16-cl", "--torchattacks", "all"]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    f = out["forward_flops_per_image"]
    assert out["cost_model_flops_per_image"] == (2 * 3 + 3) * f
    # Input-only attack gradients: the counted cost is (2K+3)F up to the first layer's
    # unneeded gradients, clearly below the naive (3K+3)F of a weight-gradient backward.
    counted = out["counted_flops_per_image"]
    assert 0.9 * (2 * 3 + 3) * f <= counted <= (2 * 3 + 3) * f * 1.001
    assert counted < 0.9 * (3 * 3 + 3) * f
    assert set(out["ours"]) == {"fp32", "bf16-cl"} == set(out["torchattacks"])
    for side in ("ours", "torchattacks"):
        for row in out[side].values():
            assert "error" not in row, row
            assert row["images_per_s"] > 0
            assert row["seconds_per_epoch_50k"] == pytest.approx(50_000 / row["images_per_s"])
            assert row["achieved_tflops_per_s"] == pytest.approx(
                counted * row["images_per_s"] / 1e12
            )
            assert row["ratio_to_nominal_floor"] == pytest.approx(
                row["seconds_per_epoch_50k"] / out["nominal_floor_seconds_per_epoch_50k"]
            )
    assert out["nominal_floor_seconds_per_epoch_50k"] == pytest.approx(
        50_000 * (2 * 3 + 3) * f / 790e12
    )
    assert out["best_variant"] in out["ours"]
    assert set(out["speedups"]) >= {"best_vs_ours_fp32", "ours_vs_torchattacks_fp32"}


def test_notes_floor_for_preactresnet18_is_reproduced():
    # notes §2.3: PGD-10 epoch of PreActResNet-18 at 790 TF/s ≈ 1.6 s (F ≈ 1.11 GFLOP).
    import torch

    from robmem.empirics.models import build_model

    bench = _module()
    fwd = bench.forward_flops(
        build_model("preactresnet18", 10, (3, 32, 32)), torch.rand(1, 3, 32, 32)
    )
    assert fwd == pytest.approx(1.11e9, rel=0.01)
    assert 50_000 * 23 * fwd / 790e12 == pytest.approx(1.62, abs=0.02)


def test_a_failing_variant_is_recorded_and_the_others_run(capsys, monkeypatch):
    bench = _module()
    real = bench.ours_step_fn

    def flaky(args, config, device, data):
        if config.precision == "bf16":
            raise RuntimeError("simulated compile failure\nsecond line")
        return real(args, config, device, data)

    monkeypatch.setattr(bench, "ours_step_fn", flaky)
    argv = [*SMALL, "--batch-size", "1", "--steps", "1", "--peak-tflops", "1.0",
            "--variants", "fp32,bf16", "--torchattacks", "none"]  # fmt: skip
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ours"]["bf16"] == {"error": "RuntimeError: simulated compile failure"}
    assert out["ours"]["fp32"]["images_per_s"] > 0 and out["best_variant"] == "fp32"
    assert out["peak_flops_per_s"] == 1e12 and out["peak_source"] == "--peak-tflops"
    assert out["torchattacks"] == {}


@pytest.mark.parametrize(
    "argv",
    [["--batch-size", "0"], ["--variants", "fp64"], ["--model", "vgg"],
     ["--batch-size", "8", "--train-size", "4"], ["--nominal-tflops", "0"],
     ["--iters", "2", "--rounds", "3"]],
)  # fmt: skip
def test_bench_at_epoch_bad_flags(argv, capsys):
    bench = _module()
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert "error" in capsys.readouterr().err


def test_model_aliases():
    bench = _module()
    assert bench.resolve_model("wrn-34-10") == ("wrn", {"depth": 34, "widen": 10})
    assert bench.resolve_model("preactresnet18") == ("preactresnet18", {})


def test_restated_torchattacks_pgd_equals_torchattacks():
    import torch
    import torchattacks

    from robmem.empirics.models import build_model

    bench = _module()
    torch.manual_seed(0)
    model = build_model("lenet5", 10, (1, 28, 28)).eval()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    torch.manual_seed(5)
    ref = torchattacks.PGD(model, eps=0.1, alpha=0.02, steps=4, random_start=True)(x, y)
    torch.manual_seed(5)
    ours = bench.restated_torchattacks_pgd(model, x, y, 0.1, 0.02, 4)
    assert torch.equal(ours, ref)


def test_baseline_falls_back_to_the_restatement_without_torchattacks(capsys, monkeypatch):
    import sys

    bench = _module()
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import raises ImportError
    argv = [*SMALL, "--batch-size", "1", "--steps", "1", "--peak-tflops", "1.0"]
    assert bench.main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["torchattacks_impl"].startswith("restated torchattacks.PGD.forward")
    assert out["torchattacks"]["fp32"]["images_per_s"] > 0


def test_out_file_keeps_finished_variants_when_the_run_is_cut_short(tmp_path, capsys, monkeypatch):
    bench = _module()
    out = tmp_path / "r.json"
    argv = [*SMALL, "--batch-size", "1", "--steps", "1", "--peak-tflops", "1.0",
            "--torchattacks", "none", "--out", str(out)]  # fmt: skip
    assert bench.main([*argv, "--variants", "fp32"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == printed and printed["complete"] is True

    real = bench.ours_step_fn

    def killed_in_the_second_round(args, config, device, data):
        step, calls = real(args, config, device, data), []

        def counted():
            calls.append(1)
            if config.precision == "bf16" and len(calls) == 2:
                raise KeyboardInterrupt  # stands in for the time limit's signal
            step()

        return counted

    monkeypatch.setattr(bench, "ours_step_fn", killed_in_the_second_round)
    with pytest.raises(KeyboardInterrupt):
        bench.main([*argv, "--variants", "fp32,bf16", "--iters", "2", "--rounds", "2"])
    partial = json.loads(out.read_text())
    assert partial["complete"] is False and partial["best_variant"] is None
    for name in ("fp32", "bf16"):  # both timed in round 1, saved before round 2
        assert partial["ours"][name]["images_per_s"] > 0
        assert len(partial["ours"][name]["seconds_per_step_rounds"]) == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_variants_are_timed_in_interleaved_rounds(capsys, monkeypatch):
    bench = _module()
    order = []

    def recording(args, config, device, data):
        def step():
            order.append(config.precision)

        return step

    monkeypatch.setattr(bench, "ours_step_fn", recording)
    monkeypatch.setattr(bench, "step_flops", lambda step: 1)
    argv = [*SMALL, "--batch-size", "1", "--steps", "1", "--peak-tflops", "1.0",
            "--torchattacks", "none", "--variants", "fp32,bf16", "--warmup", "1",
            "--iters", "6", "--rounds", "3"]  # fmt: skip
    assert bench.main(argv) == 0
    # warm-up of each in turn, then 3 rounds of 2 steps per variant, alternating.
    assert order == ["fp32", "bf16"] + ["fp32", "fp32", "bf16", "bf16"] * 3
    out = json.loads(capsys.readouterr().out)
    assert len(out["ours"]["fp32"]["seconds_per_step_rounds"]) == 3
