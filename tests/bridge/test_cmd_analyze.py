"""``robmem analyze``: run folders (one or several epochs), TorchScript, torch.export and
state-dict files, every flag, bad input and exit codes (issue 15)."""

from __future__ import annotations

import json
import pickle
import warnings

import pytest
import torch

from robmem.bridge.analyze import epoch_checkpoint_callback, model_from_checkpoint
from robmem.bridge.analyze_render import JSON_FILE
from robmem.bridge.cli import main
from robmem.empirics.config import TrainConfig
from robmem.empirics.runs import load_metrics

# Small and fast: a few landscape points, no PAC-Bayes search.
FAST = ["--landscape-samples", "10", "--landscape-steps", "2", "--no-pac-bayes", "--threads", "1"]
DATA = ["--data", "digits", "--n-train", "60", "--n-test", "40", "--eps", "0.1"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 3-epoch PGD-AT run on 80 digits that keeps every epoch's checkpoint."""
    from robmem.empirics.trainers import train

    cfg = TrainConfig(
        dataset="digits", n_train=80, n_test=40, model="mlp", model_kwargs={"hidden": [16]},
        epochs=3, attack_steps=2, eval_attack_steps=3, batch_size=40, lr=0.1, num_threads=1,
        schedule="constant",
    )  # fmt: skip
    path = tmp_path_factory.mktemp("runs") / "digits"
    train(cfg, path, progress=False, callbacks=[epoch_checkpoint_callback()])
    return path


@pytest.fixture(scope="module")
def model_and_cfg(run_dir):
    cfg = TrainConfig.from_json((run_dir / "config.json").read_text())
    return model_from_checkpoint(cfg, run_dir / "checkpoints" / "last.pt"), cfg


def _doc(out) -> dict:
    return json.loads((out / JSON_FILE).read_text())


def test_run_folder_last_checkpoint_agrees_with_the_trainer(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "an"
    assert main(["analyze", str(run_dir), "--out", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    assert "E1: attacking 80 train points" in captured.err  # progress on stderr
    assert "epoch 3: robust train" in captured.out
    doc = _doc(out)
    (a,) = doc["analyses"]
    final = load_metrics(run_dir)[-1]
    # the clean numbers are deterministic: equal to the trainer's; robust ones within the CI
    assert a["train"]["clean_acc"]["mean"] == pytest.approx(final["train_clean_acc"])
    assert a["test"]["clean_acc"]["mean"] == pytest.approx(final["test_clean_acc"])
    for split in ("train", "test"):
        ci = a[split]["robust_acc"]
        assert ci["ci_low"] <= final[f"{split}_robust_acc"] <= ci["ci_high"]
    assert a["attack"]["steps"] == 3 and a["attack"]["eps"] == 0.1  # the run's evaluation PGD
    assert "fro_dist" in a["complexity"]["values"]  # init re-created from the run's seed
    assert doc["command"].startswith(f"robmem analyze {run_dir} --out {out}")


def test_every_saved_epoch_draws_the_b1_curve(run_dir, tmp_path) -> None:
    out = tmp_path / "epochs"
    assert main(["analyze", str(run_dir), "--epochs", "all", "--out", str(out), *FAST]) == 0
    doc = _doc(out)
    assert [a["epoch"] for a in doc["analyses"]] == [1, 2, 3]
    b1 = next(s for s in doc["sections"] if s["id"] == "B1")
    assert [r["quantity"] for r in b1["table"]][-3:] == [
        "per epoch: epoch 1", "per epoch: epoch 2", "per epoch: epoch 3",
    ]  # fmt: skip
    assert (out / "figures" / "b1_gap_vs_bounds.png").is_file()
    out2 = tmp_path / "two"
    assert main(["analyze", str(run_dir), "--epochs", "1,3", "--out", str(out2), *FAST]) == 0
    assert [a["epoch"] for a in _doc(out2)["analyses"]] == [1, 3]


def test_torchscript_file(model_and_cfg, tmp_path) -> None:
    model, _ = model_and_cfg
    path = tmp_path / "model.ts"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(model), str(path))
    out = tmp_path / "ts"
    assert main(["analyze", str(path), "--out", str(out), *DATA, *FAST]) == 0
    doc = _doc(out)
    (a,) = doc["analyses"]
    assert a["train"]["n"] == 60 and a["b1"] is not None
    assert "B2" in a["skipped"] and "E5" in a["skipped"]  # TorchScript hides its layers
    assert "TorchScript module" in doc["source"]


def test_torch_export_file(model_and_cfg, tmp_path) -> None:
    model, _ = model_and_cfg
    x = torch.rand(4, 1, 8, 8)
    program = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    out = tmp_path / "export"
    assert main(["analyze", str(path), "--out", str(out), *DATA, *FAST]) == 0
    (a,) = _doc(out)["analyses"]
    assert a["test"]["n"] == 40 and a["flatness"]["test"]["n"] == 10


def test_state_dict_with_arch_and_init(model_and_cfg, run_dir, tmp_path) -> None:
    model, cfg = model_and_cfg
    path, init = tmp_path / "weights.pt", tmp_path / "init.pt"
    torch.save(model.state_dict(), path)
    torch.save({"state_dict": model.state_dict()}, init)  # wrapped forms are accepted
    out = tmp_path / "sd"
    argv = ["analyze", str(path), "--arch", "mlp", "--model-kwargs", '{"hidden": [16]}',
            "--init", str(init), "--out", str(out), *DATA, *FAST]  # fmt: skip
    assert main(argv) == 0
    (a,) = _doc(out)["analyses"]
    assert a["complexity"]["values"]["fro_dist"] == 0.0  # init = the weights themselves
    # a suite checkpoint is a state dict too (checksum-verified)
    out2 = tmp_path / "ckpt"
    argv = ["analyze", str(run_dir / "checkpoints" / "last.pt"), "--arch", "mlp",
            "--model-kwargs", '{"hidden": [16]}', "--out", str(out2), *DATA, *FAST]  # fmt: skip
    assert main(argv) == 0


def test_every_flag_reaches_the_analysis(run_dir, tmp_path) -> None:
    out = tmp_path / "flags"
    argv = [
        "analyze", str(run_dir), "--out", str(out), "--epochs", "2", "--n-train", "30",
        "--n-test", "20", "--data-seed", "3", "--eps", "0.05", "--norm", "inf", "--steps", "4",
        "--step-size", "1/50", "--restarts", "2", "--attack-seeds", "0,5", "--autoattack",
        "off", "--eps-grid", "0,0.05,0.1", "--landscape-samples", "7", "--landscape-steps",
        "3", "--landscape-seed", "2", "--no-init", "--no-vc", "--batch-size", "16",
        "--device", "cpu", "--threads", "1", "--no-check-logits", "--no-pac-bayes",
    ]  # fmt: skip
    assert main(argv) == 0
    doc = _doc(out)
    (a,) = doc["analyses"]
    assert a["attack"] == {
        "eps": 0.05, "norm": "inf", "steps": 4, "step_size": 0.02, "restarts": 2,
        "seeds": [0, 5], "autoattack": False,
    }  # fmt: skip
    assert (a["train"]["n"], a["test"]["n"], a["settings"]["data_seed"]) == (30, 20, 3)
    assert a["flatness"]["train"]["eps"] == [0.0, 0.05, 0.1]
    assert a["flatness"]["train"]["n"] == 7 and a["settings"]["landscape_steps"] == 3
    assert a["settings"]["landscape_seed"] == 2 and a["settings"]["batch_size"] == 16
    assert "fro_dist" not in a["complexity"]["values"] and "pacbayes_sigma" not in a[
        "complexity"]["values"]  # fmt: skip
    assert "B2" in a["skipped"]
    assert a["epoch"] == 2
    for flag in ("--restarts 2", "--attack-seeds 0,5", "--no-vc", "--epochs 2"):
        assert flag in doc["command"]
    out2 = tmp_path / "no-complexity"
    assert main(["analyze", str(run_dir), "--out", str(out2), "--no-complexity", "--norm", "2",
                 "--eps", "0.5", *FAST]) == 0  # fmt: skip
    (b,) = _doc(out2)["analyses"]
    assert b["complexity"] is None and "E2" in b["skipped"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--eps", "2"], "eps must lie in [0, 1]"),
        (["--epochs", "7"], "epochs [7] are not saved"),
        (["--epochs", "best"], "has no best.pt"),
        (["--epochs", "newest"], "--epochs must be one of"),
        (["--data", "digits"], "--data and --arch do not apply to a run folder"),
        (["--n-train", "0"], "--n-train must be an integer >= 1"),
        (["--steps", "-1"], "--steps must be an integer >= 0"),
        (["--attack-seeds", "1,1"], "attack_seeds must be distinct"),
        (
            ["--device", "cuda:7"] if not torch.cuda.is_available() else ["--steps", "-2"],
            "device" if not torch.cuda.is_available() else "--steps",
        ),
    ],
)
def test_bad_input_on_a_run_folder_exits_2(run_dir, tmp_path, capsys, extra, message) -> None:
    out = tmp_path / "bad"
    assert main(["analyze", str(run_dir), "--out", str(out), *FAST, *extra]) == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]  # after any progress lines
    assert last_line.startswith("robmem analyze: error: ") and message in last_line
    assert not out.exists()  # a rejected input leaves no output folder


def test_bad_model_files_exit_2(model_and_cfg, tmp_path, capsys) -> None:
    model, _ = model_and_cfg
    sd = tmp_path / "weights.pt"
    torch.save(model.state_dict(), sd)
    cases = [
        ([str(sd), *DATA], "pass --arch"),
        ([str(sd), "--arch", "lenet5", *DATA], "does not fit this model"),
        ([str(sd), "--arch", "mlp", "--data", "digits", "--eps", "0.1"], "does not fit"),
        ([str(sd), "--arch", "mlp", "--model-kwargs", '{"hidden": [16]}', "--eps", "0.1"],
         "--data is required"),
        ([str(sd), "--arch", "mlp", "--data", "digits"], "--eps is required"),
        ([str(tmp_path / "missing.pt"), *DATA], "does not exist"),
    ]  # fmt: skip
    for argv, message in cases:
        out = tmp_path / "out"
        assert main(["analyze", *argv, "--out", str(out), *FAST]) == 2, argv
        err = capsys.readouterr().err
        assert message in err, (argv, err)
        assert not out.exists()


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_a_malicious_pickle_is_refused_and_never_run(tmp_path, capsys) -> None:
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"weight": _Evil()}, fh, protocol=2)
    out = tmp_path / "out"
    assert main(["analyze", str(path), "--arch", "mlp", "--out", str(out), *DATA, *FAST]) == 2
    captured = capsys.readouterr()
    assert "refused or unreadable" in captured.err and "pwned" not in captured.out


def test_foreign_output_folder_is_refused(run_dir, tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep")
    assert main(["analyze", str(run_dir), "--out", str(out), *FAST]) == 2
    assert "holds no previous robmem analysis" in capsys.readouterr().err
    assert main(["analyze", str(run_dir), "--out", str(out), "--force", *FAST]) == 0
    assert (out / "thesis.tex").read_text() == "keep"
    # a previous analysis is replaced without --force
    assert main(["analyze", str(run_dir), "--out", str(out), *FAST]) == 0
