"""``robmem sweep`` flags (issue 7 §5): every flag is exercised through ``bridge.cli.main``."""

from __future__ import annotations

import json

import pytest

from robmem.bridge import cli, sweep

TINY = [
    "--dataset", "digits", "--n-train", "48", "--n-test", "24", "--model", "linear",
    "--epochs", "1", "--batch-size", "24", "--attack-steps", "1", "--eval-attack-steps", "1",
    "--schedule", "constant", "--num-threads", "1",
]  # fmt: skip


def test_dry_run_lists_the_grid(tmp_path, capsys):
    code = cli.main(
        ["sweep", "--out", str(tmp_path / "s"), "--seeds", "0,1", "--noise-rates", "0,0.5",
         "--epsilons", "1/10", "--grid", "lr=0.1,0.01", "--dry-run", *TINY]
    )  # fmt: skip
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 8
    assert lines[0].split("\t")[0] == "seed=0_label_noise=0_epsilon=0.1_lr=0.1"
    assert not (tmp_path / "s").exists()  # a dry run writes nothing


def test_sweep_runs_then_skips(tmp_path, capsys):
    argv = ["sweep", "--out", str(tmp_path / "s"), "--seeds", "0,1", *TINY]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("completed") == 2
    manifest = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert manifest["grid"] == {"seed": [0, 1]}
    assert cli.main(argv) == 0
    assert capsys.readouterr().out.count("skipped") == 2


def test_engine_flags_reach_run_sweep(tmp_path, monkeypatch):
    seen = {}

    def fake_run_sweep(runs, **kw):
        seen.update(kw, n=len(runs))
        return []

    monkeypatch.setattr(sweep, "run_sweep", fake_run_sweep)
    code = cli.main(
        ["sweep", "--out", str(tmp_path / "s"), "--seeds", "0,1,2", "--backend", "ray",
         "--ray-address", "auto", "--cpus-per-run", "2", "--gpus-per-run", "0.5",
         "--jobs", "3", *TINY]
    )  # fmt: skip
    assert code == 0
    assert seen == {
        "backend": "ray", "jobs": 3, "ray_address": "auto", "cpus_per_run": 2.0,
        "gpus_per_run": 0.5, "n": 3,
    }  # fmt: skip


def test_config_and_preset_bases(tmp_path, capsys):
    from robmem.empirics.config import TrainConfig

    TrainConfig(dataset="digits", epochs=3).save(tmp_path / "base.json")
    assert cli.main(["sweep", "--out", str(tmp_path / "s"), "--config",
                     str(tmp_path / "base.json"), "--seeds", "4", "--dry-run"]) == 0  # fmt: skip
    assert "seed=4" in capsys.readouterr().out
    assert cli.main(["sweep", "--out", str(tmp_path / "p"), "--preset", "rice-cifar10-pgd",
                     "--epsilons", "2/255,8/255", "--dry-run"]) == 0  # fmt: skip
    assert "epsilon=0.0313725" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--seeds", "0,1"], "--out"),
        (["--out", "X", "--noise-rates", "0,2"], "label_noise"),
        (["--out", "X", "--epsilons", "-1"], "epsilon"),
        (["--out", "X", "--grid", "sead=1,2"], "sead"),
        (["--out", "X", "--seeds", "1", "--grid", "seed=1,2"], "seed"),
        (["--out", "X", "--jobs", "0"], "jobs"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, match):
    argv = [a.replace("X", str(tmp_path / "s")) for a in argv]
    assert cli.main(["sweep", *argv, *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("robmem sweep: error:") and match in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("bad", [["--seeds", "a,b"], ["--seeds", ","], ["--grid", "nofield"],
                                 ["--backend", "slurm"], ["--epsilons", "x"]])  # fmt: skip
def test_unparseable_flags_are_argparse_errors(bad, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", "--out", "o", *bad])
    assert info.value.code == 2
    assert "robmem sweep: error:" in capsys.readouterr().err
