"""``robmem train``: every flag reaches the config; runs, resume, errors and exit codes."""

import dataclasses
import json

import pytest

from robmem.bridge.cli import main
from robmem.empirics.config import TrainConfig
from robmem.empirics.runs import load_metrics

# One non-default value per TrainConfig field: (argv after the flag name, expected value).
FLAG_CASES = {
    "dataset": (["mnist10k"], "mnist10k"),
    "data_root": (["/tmp/data"], "/tmp/data"),
    "download": ([], True),
    "n_train": (["50"], 50),
    "n_test": (["40"], 40),
    "data_seed": (["3"], 3),
    "val_size": (["10"], 10),
    "label_noise": (["0.5"], 0.5),
    "label_noise_seed": (["4"], 4),
    "augment": ([], True),
    "augment_padding": (["2"], 2),
    "model": (["lenet5"], "lenet5"),
    "model_kwargs": (['{"hidden": [8, 4]}'], {"hidden": [8, 4]}),
    "method": (["trades-te"], "trades-te"),
    "norm": (["2"], "2"),
    "epsilon": (["8/255"], 8 / 255),
    "attack_steps": (["7"], 7),
    "attack_step_size": (["2/255"], 2 / 255),
    "attack_eval_mode": (None, False),
    "fgsm_step_size": (["0.2"], 0.2),
    "trades_beta": (["1.5"], 1.5),
    "te_alpha": (["0.5"], 0.5),
    "te_start_epoch": (["3"], 3),
    "te_end_epoch": (["200"], 200),
    "te_weight": (["30"], 30.0),
    "epochs": (["3"], 3),
    "batch_size": (["16"], 16),
    "optimizer": (["adam"], "adam"),
    "lr": (["0.01"], 0.01),
    "lr_reference_batch": (["128"], 128),
    "momentum": (["0.5"], 0.5),
    "nesterov": ([], True),
    "weight_decay": (["0"], 0.0),
    "schedule": (["cyclic"], "cyclic"),
    "milestones": (["3", "7"], [3, 7]),
    "lr_gamma": (["0.5"], 0.5),
    "cyclic_peak_fraction": (["0.5"], 0.5),
    "grad_clip": (["1.0"], 1.0),
    "eval_every": (["2"], 2),
    "eval_attack_steps": (["20"], 20),
    "eval_attack_step_size": (["0.01"], 0.01),
    "eval_restarts": (["3"], 3),
    "eval_batch_size": (["64"], 64),
    "eval_train_size": (["30"], 30),
    "select_metric": (["train_robust_acc"], "train_robust_acc"),
    "select_mode": (["min"], "min"),
    "allow_test_selection": ([], True),
    "seed": (["9"], 9),
    "device": (["auto"], "auto"),
    "precision": (["bf16"], "bf16"),
    "channels_last": ([], True),
    "compile": ([], True),
    "compile_mode": (["reduce-overhead"], "reduce-overhead"),
    "num_threads": (["2"], 2),
}
# norm "2" is only valid for non-TRADES methods: the resolved config must still validate.
_CONTEXT = {"norm": ["--method", "pgd"]}


def _dry_run(argv, capsys):
    code = main(["train", "--dry-run", "--format", "json", *argv])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def test_flag_table_covers_every_field():
    assert set(FLAG_CASES) == {f.name for f in dataclasses.fields(TrainConfig)}


@pytest.mark.parametrize("name", sorted(FLAG_CASES))
def test_every_flag_sets_its_field(name, capsys):
    values, expected = FLAG_CASES[name]
    flag = "--" + name.replace("_", "-")
    argv = (
        [flag]
        if values == []
        else ["--no-" + name.replace("_", "-")]
        if values is None
        else [flag, *values]
    )
    resolved = _dry_run(_CONTEXT.get(name, []) + argv, capsys)
    assert (
        resolved[name] == pytest.approx(expected)
        if isinstance(expected, float)
        else (resolved[name] == expected)
    )
    assert resolved[name] != getattr(TrainConfig(), name)


@pytest.mark.parametrize("name", ["n_train", "grad_clip", "eval_attack_step_size"])
def test_optional_flags_accept_none(name, capsys):
    flag = "--" + name.replace("_", "-")
    assert _dry_run([flag, "3", flag, "none"], capsys)[name] is None


def test_bool_flags_switch_both_ways(capsys):
    assert _dry_run(["--augment", "--no-augment"], capsys)["augment"] is False
    assert _dry_run(["--no-attack-eval-mode", "--attack-eval-mode"], capsys)["attack_eval_mode"]


def test_config_file_preset_and_overrides(tmp_path, capsys):
    path = tmp_path / "c.toml"
    TrainConfig(epochs=7, lr=0.3).save(path)
    got = _dry_run(["--config", str(path), "--lr", "0.2"], capsys)
    assert got["epochs"] == 7 and got["lr"] == 0.2
    got = _dry_run(["--preset", "rice-cifar10-pgd", "--epochs", "5"], capsys)
    assert got["model"] == "preactresnet18" and got["epochs"] == 5
    assert main(["train", "--dry-run", "--preset", "rice-cifar10-pgd"]) == 0
    assert "epsilon = 0.03137" in capsys.readouterr().out  # TOML by default


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--epsilon", "-1"], "epsilon must be >= 0"),
        (["--label-noise", "2"], "label_noise must be in"),
        (["--select-metric", "test_robust_acc"], "allow_test_selection"),
        (["--config", "missing.toml"], "no such file"),
        (["--config", "a.toml", "--preset", "rice-cifar10-pgd"], "exclusive"),
        ([], "--run-dir is required"),
    ],
)
def test_user_errors_exit_2_with_the_field_named(argv, message, capsys):
    assert main(["train", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unparseable_values_are_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--epsilon", "abc"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["train", "--method", "madry"])
    with pytest.raises(SystemExit):
        main(["train", "--model-kwargs", "[1, 2]"])


TINY_ARGS = [
    "--dataset", "digits", "--n-train", "64", "--n-test", "32", "--model", "mlp",
    "--model-kwargs", '{"hidden": [8]}', "--epochs", "2", "--batch-size", "32",
    "--attack-steps", "1", "--eval-attack-steps", "1", "--schedule", "constant",
    "--num-threads", "1",
]  # fmt: skip


def test_train_resume_and_no_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--run-dir", str(run), "--progress", *TINY_ARGS]) == 0
    out = capsys.readouterr()
    assert "metrics.jsonl" in out.out and "train_robust_acc=" in out.out
    assert "epoch" in out.err  # the progress bar
    assert len(load_metrics(run)) == 2
    # same dir again without --resume: refused, nothing touched
    before = (run / "metrics.jsonl").read_text()
    assert main(["train", "--run-dir", str(run), "--no-progress", *TINY_ARGS]) == 2
    assert "already exists" in capsys.readouterr().err
    # --resume with only the run dir uses the stored config; a finished run stays as it is
    assert main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 0
    assert (run / "metrics.jsonl").read_text() == before
    # --resume with a changed setting is refused and names it
    assert main(["train", "--run-dir", str(run), "--resume", "--epsilon", "0.3"]) == 2
    assert "epsilon: run has 0.1, given 0.3" in capsys.readouterr().err
    # a corrupted checkpoint is refused, not loaded
    last = run / "checkpoints" / "last.pt"
    raw = bytearray(last.read_bytes())
    raw[100] ^= 0xFF
    last.write_bytes(bytes(raw))
    assert main(["train", "--run-dir", str(run), "--resume", "--no-progress"]) == 2
    assert "checksum mismatch" in capsys.readouterr().err


def test_nan_exit_code_3(tmp_path, capsys, monkeypatch):
    from robmem.empirics import trainers

    real = trainers.method_step

    def poisoned(*a, **kw):
        out = real(*a, **kw)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(trainers, "method_step", poisoned)
    assert main(["train", "--run-dir", str(tmp_path / "r"), "--no-progress", *TINY_ARGS]) == 3
    assert "stopped: training loss is nan" in capsys.readouterr().err


def test_speed_flags_run_on_cpu(tmp_path, capsys):
    """--precision bf16 (autocast), --channels-last and --augment on a conv net, for real."""
    argv = [
        "train", "--run-dir", str(tmp_path / "run"), "--no-progress", "--dataset", "digits",
        "--n-train", "64", "--n-test", "32", "--model", "lenet5", "--epochs", "1",
        "--batch-size", "32", "--attack-steps", "1", "--eval-attack-steps", "1",
        "--num-threads", "1", "--precision", "bf16", "--channels-last", "--augment",
    ]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    row = load_metrics(tmp_path / "run")[-1]
    assert row["train_robust_acc"] is not None and row["grad_norm_mean"] > 0
    config = TrainConfig.load(tmp_path / "run" / "config.json")
    assert config.channels_last and config.augment and config.precision == "bf16"


@pytest.mark.slow
def test_compile_flag_runs(tmp_path):
    run = str(tmp_path / "r")
    assert main(["train", "--run-dir", run, "--no-progress", "--compile", *TINY_ARGS]) == 0
