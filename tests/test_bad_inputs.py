"""Bad-input sweep (issue 7 §2): every public entry point, fed the invalid inputs of SPEC and
the issues, fails with ``ValueError``/``TypeError`` whose message names the argument, leaves no
partial files behind, and (CLI) exits 2 with one line ``robmem <cmd>: error: ...`` instead of a
traceback from deep inside a library.

Cases are data: ``(id, thunk, argument name the message must contain)``. A case fails if the
call succeeds, raises another type, or the message does not name the argument.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

NAN, INF = math.nan, math.inf


# ---------------------------------------------------------------------------------- theory
def _sep_data():
    x = np.array([[0.1, 0.1], [0.9, 0.9], [0.1, 0.9]])
    y = np.array([1, -1, 1])
    return x, y


def _theory_cases():
    from robmem.theory import (
        certify,
        construction,
        counting,
        data_models,
        grid_instance,
        linear,
        separation,
        sizes,
    )

    x, y = _sep_data()

    def build(**kw):
        args = dict(points=x, labels=y, delta=0.1)
        args.update(kw)
        return lambda: construction.build_construction(**args)

    def memorizer():
        return construction.build_construction(x, y, 0.1)

    cases = [
        ("construction-delta-zero", build(delta=0.0), "delta"),
        ("construction-delta-negative", build(delta=-0.1), "delta"),
        ("construction-delta-nan", build(delta=NAN), "delta"),
        ("construction-delta-inf", build(delta=INF), "delta"),
        ("construction-delta-too-big", build(delta=0.45), "delta"),
        (
            "construction-points-nan",
            build(points=np.array([[NAN, 0.1], [0.9, 0.9]]), labels=np.array([1, -1])),
            "points",
        ),  # fmt: skip
        ("construction-points-outside-domain", build(points=x + 1.0), "points"),
        ("construction-label-count", build(labels=np.array([1, -1])), "labels"),
        ("construction-empty", build(points=np.zeros((0, 2)), labels=np.zeros(0, int)), "points"),
        (
            "construction-points-1d",
            build(points=np.array([0.1, 0.9]), labels=np.array([1, -1])),
            "points",
        ),  # fmt: skip
        (
            "construction-not-separated",
            build(points=np.array([[0.2, 0.2], [0.2, 0.2]]), labels=np.array([1, -1])),
            "separat",
        ),  # fmt: skip
        ("construction-norm", build(norm="1"), "norm"),
        ("construction-subset", build(subset="some"), "subset"),
        ("construction-l2-method", build(norm="2", l2_method="magic"), "l2_method"),
        ("construction-small-margin-without-clean", build(subset="small-margin"), "clean"),
        ("certify-radius-negative", lambda: certify.certify(memorizer(), x, y, -0.1), "radius"),
        ("certify-radius-nan", lambda: certify.certify(memorizer(), x, y, NAN), "radius"),
        ("certify-net-type", lambda: certify.certify("net", x, y, 0.1), "net"),
        ("certify-norm", lambda: certify.certify(memorizer(), x, y, 0.1, norm="7"), "norm"),
        ("certify-label-count", lambda: certify.certify(memorizer(), x, y[:2], 0.1), "labels"),
        (
            "certify-network-outside-domain",
            lambda: certify.certify(memorizer().network(), x + 2.0, y, 0.1),
            "points",
        ),  # fmt: skip
        (
            "certify-outside-samples",
            lambda: certify.certify_outside_balls(memorizer(), n_samples=0),
            "n_samples",
        ),  # fmt: skip
        ("separation-norm", lambda: separation.opposite_label_separation(x, y, "fro"), "norm"),
        (
            "separation-shape",
            lambda: separation.opposite_label_separation(x, y[:1], "inf"),
            "labels",
        ),  # fmt: skip
        ("count-n-points", lambda: counting.construction_parameter_count(0, 3), "n_points"),
        ("count-dim", lambda: counting.construction_parameter_count(3, 0), "dim"),
        ("count-norm", lambda: counting.construction_parameter_count(3, 3, norm="1"), "norm"),
        ("sizes-eps", lambda: sizes.size_table(10, 3, 0.6, 0.1), "eps"),
        ("sizes-delta", lambda: sizes.size_table(10, 3, 0.2, 0.3), "delta"),
        ("sizes-n", lambda: sizes.size_table(0, 3, 0.2, 0.1), "n_points"),
        ("grid-eps", lambda: grid_instance.grid_instance(2, 0.0), "eps"),
        ("grid-dim", lambda: grid_instance.grid_instance(0, 0.1), "dim"),
        (
            "data-model-dim",
            lambda: data_models.linear_separable_data(5, 5, 0, 1.0, 0.1, 0.1),
            "dim",
        ),  # fmt: skip
        (
            "data-model-noise",
            lambda: data_models.linear_separable_data(5, 5, 3, 1.0, 0.1, -1.0),
            "noise_std",
        ),  # fmt: skip
        (
            "data-model-n",
            lambda: data_models.linear_separable_data(-1, 5, 3, 1.0, 0.1, 0.1),
            "n_large",
        ),  # fmt: skip
        (
            "linear-margin-delta",
            lambda: linear.robust_margin(np.ones(2), x, y, delta=-0.1),
            "delta",
        ),  # fmt: skip
        (
            "linear-margin-p",
            lambda: linear.robust_margin(np.ones(2), x, y, delta=0.1, p=0.5),
            "p",
        ),  # fmt: skip
    ]
    return cases


def _bound_cases():
    from robmem.theory.bounds import REGISTRY

    cases = []
    for name, spec in sorted(REGISTRY.items()):
        kwargs = spec.sample_kwargs(np.random.default_rng(0))
        for param in spec.params:
            bads = [("none", None)]
            if param.choices is None:
                bads.append(("str", "1.0"))
                if param.low >= 0:
                    bads.append(("minus-inf", -INF))
            elif all(isinstance(c, float) and c >= 1 for c in param.choices):
                bads.append(("exponent-below-one", 0.5))  # an ℓp exponent p < 1 is no norm
            for tag, bad in bads:
                broken = dict(kwargs, **{param.name: bad})
                cases.append(
                    (f"bound-{name}-{param.name}-{tag}", lambda s=spec, b=broken: s(**b),
                     param.name)
                )  # fmt: skip
    return cases


# --------------------------------------------------------------------------------- empirics
def _empirics_cases():
    import torch

    from robmem.empirics import attacks, data, models
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.landscape import input_landscape
    from robmem.empirics.measures import complexity_measures, quantile_margin
    from robmem.empirics.memorization import per_example_robust_loss

    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    xb = torch.rand(2, 1, 2, 2)
    yb = torch.tensor([0, 2])

    def attack_call(x=xb, y=yb):
        return lambda: attacks.PGD(0.1, 0.05, 2)(model, x, y)

    return [
        ("pgd-eps-negative", lambda: attacks.PGD(-0.1, 0.01, 3), "eps"),
        ("pgd-eps-nan", lambda: attacks.PGD(NAN, 0.01, 3), "eps"),
        ("pgd-alpha-zero", lambda: attacks.PGD(0.1, 0.0, 3), "alpha"),
        ("pgd-steps-negative", lambda: attacks.PGD(0.1, 0.01, -1), "steps"),
        ("pgd-restarts-zero", lambda: attacks.PGD(0.1, 0.01, 3, restarts=0), "restarts"),
        ("pgd-norm", lambda: attacks.PGD(0.1, 0.01, 3, norm="1"), "norm"),
        ("fgsm-eps", lambda: attacks.FGSM(-1.0), "eps"),
        ("fgsmrs-alpha", lambda: attacks.FGSMRS(0.1, -0.1), "alpha"),
        ("trades-steps", lambda: attacks.TradesPGD(0.1, 0.01, -2), "steps"),
        ("linear-exact-eps", lambda: attacks.LinearExactAttack(-0.1, "inf"), "eps"),
        ("attack-x-above-one", attack_call(x=xb + 1.0), "x"),
        ("attack-x-below-zero", attack_call(x=xb - 1.0), "x"),
        ("attack-x-nan", attack_call(x=torch.full((2, 1, 2, 2), NAN)), "x"),
        ("attack-x-int", attack_call(x=torch.ones(2, 1, 2, 2, dtype=torch.int64)), "x"),
        ("attack-y-count", attack_call(y=torch.tensor([0, 1, 2])), "y"),
        ("attack-y-float", attack_call(y=torch.tensor([0.0, 1.0])), "y"),
        ("attack-y-negative", attack_call(y=torch.tensor([0, -1])), "y"),
        ("attack-y-above-classes", attack_call(y=torch.tensor([0, 7])), "y:"),
        ("model-name", lambda: models.build_model("transformer", 10, (1, 8, 8)), "name"),
        ("model-classes", lambda: models.build_model("mlp", 0, (1, 8, 8)), "num_classes"),
        ("data-name", lambda: data.load_dataset("imagenet-1k"), "name"),
        ("data-n-train", lambda: data.load_dataset("digits", n_train=0), "n_train"),
        ("noise-rate", lambda: data.with_label_noise(torch.tensor([0, 1]), 1.5, 2, 0), "rate"),
        (
            "noise-rate-nan",
            lambda: data.with_label_noise(torch.tensor([0, 1]), NAN, 2, 0),
            "rate",
        ),  # fmt: skip
        (
            "noise-classes",
            lambda: data.with_label_noise(torch.tensor([0, 1]), 0.5, 1, 0),
            "num_classes",
        ),  # fmt: skip
        (
            "noise-label-count",
            lambda: data.with_label_noise(torch.tensor([0, 5]), 0.5, 3, 0),
            "labels",
        ),  # fmt: skip
        ("landscape-eps", lambda: input_landscape(model, xb, yb, [-0.1]), "eps_grid"),
        ("landscape-steps", lambda: input_landscape(model, xb, yb, [0.1], steps=0), "steps"),
        ("landscape-x-range", lambda: input_landscape(model, xb + 2.0, yb, [0.1]), "x"),
        ("landscape-y-count", lambda: input_landscape(model, xb, yb[:1], [0.1]), "y"),
        (
            "robust-loss-x-range",
            lambda: per_example_robust_loss(model, xb - 1.0, yb, attacks.PGD(0.1, 0.05, 2)),
            "x",
        ),
        ("measures-y-count", lambda: complexity_measures(model, xb, yb[:1]), "y"),
        (
            "measures-x-nan",
            lambda: complexity_measures(model, torch.full_like(xb, NAN), yb),
            "x",
        ),  # fmt: skip
        (
            "measures-quantile",
            lambda: complexity_measures(model, xb, yb, margin_quantile=1.5),
            "margin_quantile",
        ),  # fmt: skip
        ("quantile-margin", lambda: quantile_margin(torch.rand(5), 1.5), "quantile"),
        ("config-eps", lambda: TrainConfig(epsilon=-0.1), "epsilon"),
        ("config-eps-nan", lambda: TrainConfig(epsilon=NAN), "epsilon"),
        ("config-step", lambda: TrainConfig(attack_step_size=0.0), "attack_step_size"),
        ("config-steps", lambda: TrainConfig(attack_steps=-1), "attack_steps"),
        ("config-noise", lambda: TrainConfig(label_noise=1.5), "label_noise"),
        ("config-epochs-type", lambda: TrainConfig(epochs="10"), "epochs"),
        ("config-epochs-bool", lambda: TrainConfig(epochs=True), "epochs"),
        ("config-method", lambda: TrainConfig(method="free-at"), "method"),
        ("config-unknown-field", lambda: TrainConfig.from_dict({"epsilom": 0.1}), "epsilom"),
        (
            "config-test-selection",
            lambda: TrainConfig(select_metric="test_robust_acc"),
            "select_metric",
        ),  # fmt: skip
    ]


ALL_CASES = _theory_cases() + _bound_cases() + _empirics_cases()


@pytest.mark.parametrize(("case", "thunk", "argument"), ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_bad_input_raises_naming_the_argument(case, thunk, argument):
    with pytest.raises((ValueError, TypeError)) as info:
        thunk()
    assert argument.lower() in str(info.value).lower(), (case, str(info.value))


# ----------------------------------------------------------------------------- trainers
TINY = dict(
    dataset="digits", n_train=32, n_test=16, model="linear", method="pgd", epochs=1,
    batch_size=16, attack_steps=1, eval_attack_steps=1, schedule="constant", num_threads=1,
)  # fmt: skip


def _tree(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_train_rejects_a_dict_config(tmp_path):
    from robmem.empirics.trainers import train

    with pytest.raises(TypeError, match="config"):
        train(dict(TINY), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("change", "argument"),
    [({"dataset": "imagenet-1k"}, "dataset"), ({"model": "transformer"}, "model")],
)
def test_train_with_unknown_names_leaves_no_run_dir(tmp_path, change, argument):
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import train

    with pytest.raises(ValueError) as info:
        train(TrainConfig(**{**TINY, **change}), tmp_path / "run", progress=False)
    assert argument in str(info.value)
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_train_never_overwrites_and_resume_checks_config(tmp_path):
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import train

    config = TrainConfig(**TINY)
    train(config, tmp_path / "run", progress=False)
    before = _tree(tmp_path / "run")
    with pytest.raises(FileExistsError, match="run_dir"):
        train(config, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="epsilon"):
        train(config.replace(epsilon=0.2), tmp_path / "run", resume=True, progress=False)
    after = _tree(tmp_path / "run")
    assert {k: v for k, v in after.items() if k != "status.json"} == {
        k: v for k, v in before.items() if k != "status.json"
    }


# ----------------------------------------------------------------------------- CLI
CLI_CASES = [
    # (id, argv, argument named in the message, output path that must not appear)
    ("construct-delta-negative", ["construct", "--delta", "-0.1", "-n", "20"], "delta", None),
    ("construct-delta-nan", ["construct", "--delta", "nan", "-n", "20"], "delta", None),
    ("construct-delta-too-big", ["construct", "--delta", "0.9", "-n", "20"], "delta", None),
    ("construct-n-zero", ["construct", "--delta", "0.01", "-n", "0"], "n", None),
    (
        "construct-teeth",
        [
            "construct",
            "--delta",
            "0.01",
            "-n",
            "10",
            "--norm",
            "2",
            "--l2-method",
            "sawtooth",
            "--teeth",
            "-3",
        ],
        "teeth",
        None,
    ),  # fmt: skip
    (
        "sizes-eps",
        ["sizes", "--n", "10", "--d", "3", "--eps", "0.7", "--delta", "0.1"],
        "eps",
        None,
    ),  # fmt: skip
    (
        "sizes-delta",
        ["sizes", "--n", "10", "--d", "3", "--eps", "0.2", "--delta", "0.3"],
        "delta",
        None,
    ),  # fmt: skip
    ("sizes-n", ["sizes", "--n", "0", "--d", "3", "--eps", "0.2", "--delta", "0.1"], "n", None),
    (
        "sizes-confidence",
        ["sizes", "--n", "10", "--d", "3", "--eps", "0.2", "--delta", "0.1", "--confidence", "1.5"],
        "confidence",
        None,
    ),  # fmt: skip
    ("train-eps", ["train", "--run-dir", "{out}", "--epsilon", "-0.1"], "epsilon", "{out}"),
    (
        "train-steps",
        ["train", "--run-dir", "{out}", "--attack-steps", "-1"],
        "attack_steps",
        "{out}",
    ),  # fmt: skip
    (
        "train-step-size",
        ["train", "--run-dir", "{out}", "--attack-step-size", "0"],
        "attack_step_size",
        "{out}",
    ),  # fmt: skip
    (
        "train-noise",
        ["train", "--run-dir", "{out}", "--label-noise", "2"],
        "label_noise",
        "{out}",
    ),  # fmt: skip
    (
        "train-dataset",
        ["train", "--run-dir", "{out}", "--dataset", "imagenet-1k"],
        "dataset",
        "{out}",
    ),  # fmt: skip
    (
        "train-model",
        ["train", "--run-dir", "{out}", "--model", "transformer"],
        "model",
        "{out}",
    ),  # fmt: skip
    (
        "train-config-missing",
        ["train", "--run-dir", "{out}", "--config", "{out}.toml"],
        "config",
        "{out}",
    ),  # fmt: skip
    ("train-no-run-dir", ["train", "--epochs", "1"], "run-dir", None),
    ("report-no-tier", ["report", "--out", "{out}"], "tier", "{out}"),
    ("report-no-out", ["report", "--tier", "smoke"], "out", None),
    (
        "report-claims",
        ["report", "--tier", "smoke", "--out", "{out}", "--claims", "Z9"],
        "Z9",
        "{out}",
    ),  # fmt: skip
    ("sweep-noise", ["sweep", "--out", "{out}", "--noise-rates", "0,3"], "label_noise", "{out}"),
]


@pytest.mark.parametrize(
    ("case", "argv", "argument", "must_not_exist"), CLI_CASES, ids=[c[0] for c in CLI_CASES]
)
def test_cli_user_error_exits_2_with_one_line(
    tmp_path, capsys, case, argv, argument, must_not_exist
):
    from robmem.bridge import cli

    out = str(tmp_path / "out")
    argv = [a.replace("{out}", out) for a in argv]
    code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2, (case, captured.err)
    err = captured.err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"robmem {argv[0]}: error:"), err
    assert argument.lower() in err[0].lower(), err
    if must_not_exist is not None:
        path = pathlib.Path(must_not_exist.replace("{out}", out))
        assert not path.exists() or not any(path.iterdir()), sorted(path.iterdir())


@pytest.mark.parametrize(
    ("text", "suffix", "argument"),
    [
        ('{"epochs": "10"}', ".json", "epochs"),
        ('{"epsilom": 0.1}', ".json", "epsilom"),
        ('{"epsilon": -1}', ".json", "epsilon"),
        ('{"epochs": ', ".json", "--config"),
        ("epochs = [", ".toml", "--config"),
        ("epochs: 3", ".yaml", "yaml"),
    ],
)
def test_cli_bad_config_file_exits_2_with_one_line(tmp_path, capsys, text, suffix, argument):
    from robmem.bridge import cli

    path = tmp_path / f"base{suffix}"
    path.write_text(text)
    run_dir = tmp_path / "run"
    code = cli.main(["train", "--config", str(path), "--run-dir", str(run_dir)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("robmem train: error:"), err
    assert argument in err[0].lower() or argument in err[0], err
    assert not run_dir.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["construct", "--delta", "abc"],
        ["sizes", "--n", "1.5", "--d", "3", "--eps", "0.2", "--delta", "0.1"],
        ["train", "--epochs", "ten"],
        ["train", "--method", "free-at"],
        ["report", "--tier", "huge"],
        ["sweep", "--seeds", "x"],
        ["nonexistent-command"],
    ],
)
def test_cli_unparseable_values_are_argparse_errors(argv, capsys):
    from robmem.bridge import cli

    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error:" in err and "Traceback" not in err
