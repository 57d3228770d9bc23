"""``robmem.bridge.analyze``: the user-model analysis API (issue 15) on tiny models and data."""

from __future__ import annotations

import json
import math
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from robmem.bridge.analyze import (
    Analysis,
    LabelCoverageWarning,
    ProbabilityOutputWarning,
    _newcombe_difference,
    _welch_difference,
    analyze,
    epoch_checkpoint_callback,
    layered_architecture,
    model_from_checkpoint,
    run_checkpoints,
)
from robmem.bridge.analyze_render import HTML_FILE, JSON_FILE, MARKER_FILE, write_analysis
from robmem.bridge.stats import fraction_ci
from robmem.empirics.complexity import initial_model

# Small settings: every analysis in this file takes well under a second.
FAST = dict(steps=3, landscape_samples=12, landscape_steps=2, pac_bayes=False, batch_size=32)


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 4, 4, generator=g)
    y = (x[:, 0, :2].mean(dim=(1, 2)) > x[:, 0, 2:].mean(dim=(1, 2))).long()
    return x, y


def _mlp(seed: int = 0, out: int = 2) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, out)).eval()


@pytest.fixture(scope="module")
def train_test():
    return _data(60, 1), _data(40, 2)


@pytest.fixture(scope="module")
def result(train_test) -> Analysis:
    (x, y), (xt, yt) = train_test
    return analyze(_mlp(0), (x, y), (xt, yt), eps=0.1, init_model=_mlp(1), **FAST)


# ----------------------------------------------------------------------------- measurements
def test_every_section_is_measured_with_sample_sizes(result: Analysis) -> None:
    assert result.train.n == 60 and result.test.n == 40
    assert set(result.flatness) == {"train", "test"}
    assert result.b1 is not None and result.b2 is not None and result.complexity is not None
    assert result.skipped == {}
    assert "fro_dist" in result.complexity.values  # init model given → distances to init
    for est in (result.train.clean_acc, result.test.robust_acc, result.test.robust_loss):
        assert est.low <= est.mean <= est.high and est.n > 0
    assert [r["quantity"] for r in result.e1_rows()] == [
        "robust test", "robust train", "clean test", "clean train",
    ]  # fmt: skip
    assert len(result.train.per_example.robust_loss) == 60
    json.dumps(result.as_dict(), allow_nan=True)  # JSON-ready


def test_clean_numbers_match_an_independent_computation(train_test, result) -> None:
    (x, y), _ = train_test
    with torch.no_grad():
        logits = _mlp(0)(x)
    acc = float((logits.argmax(1) == y).float().mean())
    loss = float(nn.functional.cross_entropy(logits, y))
    assert result.train.clean_acc.mean == pytest.approx(acc)
    assert result.train.clean_loss.mean == pytest.approx(loss, rel=1e-5)
    ref = fraction_ci(int(round(acc * 60)), 60)
    assert (result.train.clean_acc.low, result.train.clean_acc.high) == pytest.approx(
        (ref.low, ref.high)
    )
    # margins: z_y - max_{k≠y} z_k is negative exactly when misclassified
    pe = result.train.per_example
    assert np.array_equal(pe.clean_margin > 0, pe.clean_correct)


def test_robust_accuracy_equals_the_suites_pgd_with_the_same_seed(train_test, result) -> None:
    from robmem.empirics.attacks import PGD, correct_under_attack

    _, (xt, yt) = train_test
    pgd = PGD(0.1, 0.025, 3, generator=torch.Generator().manual_seed(0))
    ref = correct_under_attack(_mlp(0), pgd, xt, yt, batch_size=32).float().mean().item()
    assert result.test.robust_acc.mean == pytest.approx(ref)
    assert result.test.robust_acc.mean <= result.test.clean_acc.mean
    assert np.all(result.test.per_example.robust_loss >= result.test.per_example.clean_loss - 1e-6)


def test_several_seeds_take_the_per_sample_worst_case(train_test) -> None:
    (x, y), (xt, yt) = train_test
    a = analyze(_mlp(0), (x, y), (xt, yt), eps=0.2, attack_seeds=(0, 1, 2), complexity=False,
                **FAST)  # fmt: skip
    per_attack = [e.mean for e in a.test.attack_acc.values()]
    assert len(per_attack) == 3 and a.test.robust_acc.mean <= min(per_attack) + 1e-12
    assert a.test.robust_acc_per_seed.n == 3
    assert a.test.robust_acc_per_seed.mean == pytest.approx(np.mean(per_attack))


def test_eps_zero_gives_robust_equal_to_clean(train_test) -> None:
    (x, y), (xt, yt) = train_test
    a = analyze(_mlp(0), (x, y), (xt, yt), eps=0.0, complexity=False, **FAST)
    assert a.test.robust_acc.mean == a.test.clean_acc.mean
    assert a.b1 is not None and a.b1.first_order_bound == 0.0


def test_b1_relations(result: Analysis) -> None:
    b = result.b1
    assert b is not None
    # first-order bound = ε · global flatness; Thm 6.3 shape = N^(-1/(d+2)) · flatness
    assert b.first_order_bound == pytest.approx(0.1 * b.test_grad_term.mean)
    assert b.thm63_shape == pytest.approx(60 ** (-1 / 18) * b.test_grad_term.mean)
    assert b.first_order_relation_holds
    assert b.robust_loss_gap.mean == pytest.approx(
        result.test.robust_loss.mean - result.train.robust_loss.mean
    )


def test_l2_skips_the_linf_landscape(train_test) -> None:
    (x, y), (xt, yt) = train_test
    a = analyze(_mlp(0), (x, y), (xt, yt), eps=0.5, norm="2", complexity=False, **FAST)
    assert a.flatness == {} and a.b1 is None
    assert "ℓ∞ only" in a.skipped["E2"] and "ℓ∞ only" in a.skipped["B1"]


def test_vc_architecture_of_a_conv_net_is_counted_by_hand() -> None:
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5)
    ).eval()
    names, units, params = layered_architecture(net, torch.rand(2, 1, 4, 4))
    assert names == ("0", "3")
    assert units == (3 * 4 * 4, 5)
    assert params == (3 * 1 * 9 + 3, 48 * 5 + 5)


def test_newcombe_and_welch_intervals_against_references() -> None:
    from scipy import stats

    # Newcombe (1998), Table II example: 56/70 vs 48/80 → 0.2000 [0.0524, 0.3339] (method 10)
    d = _newcombe_difference(fraction_ci(56, 70), fraction_ci(48, 80))
    assert (d.mean, d.low, d.high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)
    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 30), rng.normal(0, 2, 50)
    w = _welch_difference(a, b)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (w.low, w.high) == pytest.approx((ci.low, ci.high))


# ----------------------------------------------------------------------------- data forms
def test_builtin_name_and_subsets() -> None:
    from robmem.empirics.data import load_dataset

    d = load_dataset("digits", seed=0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    a = analyze(model, "digits", eps=0.05, n_train=50, n_test=30, complexity=False, **FAST)
    assert (a.train.n, a.test.n, a.num_classes) == (50, 30, 10)
    assert "digits" in a.data and a.dim == int(np.prod(d.in_shape))


def test_torch_dataset_of_uint8_hwc_images_is_scaled_like_to_tensor(train_test) -> None:
    (x, y), (xt, yt) = train_test

    class HWCBytes(torch.utils.data.Dataset):  # what a torchvision set without transform gives
        def __init__(self, x, y):
            self.x = (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
            self.y = y.tolist()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return self.x[i][:, :, 0], self.y[i]  # greyscale H×W array, int label

    a = analyze(_mlp(0), HWCBytes(x, y), torch.utils.data.TensorDataset(xt, yt), eps=0.1,
                complexity=False, **FAST)  # fmt: skip
    ref = analyze(_mlp(0), ((x * 255).round() / 255, y), (xt, yt), eps=0.1, complexity=False,
                  **FAST)  # fmt: skip
    assert a.train.clean_acc.mean == ref.train.clean_acc.mean
    assert a.test.robust_acc.mean == ref.test.robust_acc.mean


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"eps": 1.5}, ValueError, "eps must lie in"),
        ({"eps": -0.1}, ValueError, "eps must lie in"),
        ({"norm": "l1"}, ValueError, "norm must be"),
        ({"steps": -1}, ValueError, "steps must be"),
        ({"restarts": 0}, ValueError, "restarts must be"),
        ({"step_size": 0.0}, ValueError, "step_size must lie"),
        ({"attack_seeds": ()}, ValueError, "attack_seeds must hold"),
        ({"attack_seeds": (1, 1)}, ValueError, "attack_seeds must be distinct"),
        ({"autoattack": "maybe"}, ValueError, "autoattack must be one of"),
        ({"eps_grid": (0.1, 2.0)}, ValueError, "eps_grid must lie"),
        ({"landscape_samples": 0}, ValueError, "landscape_samples must be"),
        ({"batch_size": 0}, ValueError, "batch_size must be"),
        ({"n_train": 0}, ValueError, "n_train must be"),
    ],
)
def test_bad_arguments_are_named(train_test, kwargs, exc, match) -> None:
    (x, y), (xt, yt) = train_test
    args = {"eps": 0.1, **FAST, **kwargs}
    with pytest.raises(exc, match=match):
        analyze(_mlp(0), (x, y), (xt, yt), **args)


def test_inputs_outside_the_unit_interval_are_refused(train_test) -> None:
    (x, y), (xt, yt) = train_test
    with pytest.raises(ValueError, match=r"train_x must lie in \[0, 1\].*inside the model"):
        analyze(_mlp(0), ((x - 0.5) / 0.25, y), (xt, yt), eps=0.1, **FAST)
    with pytest.raises(ValueError, match="test_x must be finite"):
        analyze(_mlp(0), (x, y), (xt * float("nan"), yt), eps=0.1, **FAST)
    with pytest.raises(TypeError, match="divide 8-bit images by 255"):
        analyze(_mlp(0), ((x * 255).to(torch.uint8), y), (xt, yt), eps=0.1, **FAST)
    with pytest.raises(ValueError, match="test_x must have the input shape"):
        analyze(_mlp(0), (x, y), (xt[:, :, :2], yt), eps=0.1, **FAST)


def test_batchnorm_in_train_mode_is_refused(train_test) -> None:
    (x, y), (xt, yt) = train_test
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    with pytest.raises(ValueError, match="BatchNorm layer '2' is in train mode; call model.eval"):
        analyze(net, (x, y), (xt, yt), eps=0.1, **FAST)
    a = analyze(net.eval(), (x, y), (xt, yt), eps=0.1, complexity=False, **FAST)
    assert a.train.n == 60 and not net.training  # measured in eval mode, mode unchanged


def test_labels_outside_the_models_classes_are_refused(train_test) -> None:
    (x, y), (xt, yt) = train_test
    with pytest.raises(
        ValueError, match=r"test_y: labels must lie in 0\.\.1 .*got labels in 0\.\.5"
    ):
        analyze(_mlp(0), (x, y), (xt, yt * 5), eps=0.1, **FAST)
    with pytest.raises(ValueError, match="look 1-based"):
        analyze(_mlp(0), (x, y + 1), (xt, yt), eps=0.1, **FAST)
    with pytest.raises(TypeError, match="train_y must hold integer class labels"):
        analyze(_mlp(0), (x, y.float()), (xt, yt), eps=0.1, **FAST)
    with pytest.raises(ValueError, match=r"train_y must have shape \(60,\)"):
        analyze(_mlp(0), (x, y[:5]), (xt, yt), eps=0.1, **FAST)


def test_probabilities_instead_of_logits_are_refused(train_test) -> None:
    (x, y), (xt, yt) = train_test
    probs = nn.Sequential(_mlp(0), nn.Softmax(dim=1)).eval()
    with pytest.raises(ValueError, match="model returns probabilities"):
        analyze(probs, (x, y), (xt, yt), eps=0.1, **FAST)
    # log-softmax outputs are valid logits: no error, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProbabilityOutputWarning)
        analyze(nn.Sequential(_mlp(0), nn.LogSoftmax(dim=1)).eval(), (x, y), (xt, yt), eps=0.1,
                complexity=False, **FAST)  # fmt: skip
    # the user may mean it: check_logits=False accepts them
    a = analyze(probs, (x, y), (xt, yt), eps=0.1, check_logits=False, complexity=False, **FAST)
    assert a.test.n == 40


def test_named_warnings_where_the_user_may_mean_it(train_test) -> None:
    (x, y), (xt, yt) = train_test
    sigmoid = nn.Sequential(_mlp(0), nn.Sigmoid()).eval()
    with pytest.warns(ProbabilityOutputWarning, match="sigmoid"):
        analyze(sigmoid, (x, y), (xt, yt), eps=0.1, complexity=False, **FAST)
    with pytest.warns(LabelCoverageWarning, match="use 2 of the model's 5 classes"):
        analyze(_mlp(0, out=5), (x, y), (xt, yt), eps=0.1, complexity=False, **FAST)


def test_other_bad_models_and_data(train_test) -> None:
    (x, y), (xt, yt) = train_test
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        analyze(lambda t: t, (x, y), (xt, yt), eps=0.1)
    with pytest.raises(ValueError, match="init_model must have the architecture"):
        analyze(_mlp(0), (x, y), (xt, yt), eps=0.1, init_model=_mlp(0, out=3), **FAST)
    with pytest.raises(ValueError, match="test is required"):
        analyze(_mlp(0), (x, y), eps=0.1, **FAST)
    with pytest.raises(ValueError, match="train must be one of"):
        analyze(_mlp(0), "imagenet", eps=0.1, **FAST)
    with pytest.raises(TypeError, match="train must be an"):
        analyze(_mlp(0), 3, (xt, yt), eps=0.1, **FAST)

    class TupleOut(nn.Module):
        def forward(self, t):
            return (t.flatten(1)[:, :2],)

    with pytest.raises(TypeError, match="model must return a tensor of logits"):
        analyze(TupleOut(), (x, y), (xt, yt), eps=0.1, **FAST)
    flat = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).eval()
    with pytest.raises(ValueError, match="num_classes >= 2"):
        analyze(flat, (x, y), (xt, yt), eps=0.1, **FAST)


def test_autoattack_is_required_only_when_asked(train_test) -> None:
    from robmem.bridge.analyze import autoattack_available

    (x, y), (xt, yt) = train_test
    if autoattack_available():
        pytest.skip("autoattack is installed here")
    with pytest.raises(ValueError, match="autoattack='on' needs the autoattack package"):
        analyze(_mlp(0), (x, y), (xt, yt), eps=0.1, autoattack="on", **FAST)
    a = analyze(_mlp(0), (x, y), (xt, yt), eps=0.1, complexity=False, **FAST)
    assert not a.attack.autoattack and any("AutoAttack was not run" in n for n in a.notes)


def test_autoattack_is_used_when_installed(train_test, tmp_path, monkeypatch) -> None:
    """A stand-in ``autoattack`` package with the real API: it joins the worst case."""
    pkg = tmp_path / "autoattack"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import torch\n"
        "class AutoAttack:\n"
        "    calls = []\n"
        "    def __init__(self, model, norm, eps, version, seed, device, verbose):\n"
        "        self.model, self.eps = model, eps\n"
        "        AutoAttack.calls.append((norm, eps, version, device))\n"
        "    def run_standard_evaluation(self, x, y, bs):\n"
        "        return (x + self.eps).clamp(0, 1)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        (x, y), (xt, yt) = train_test
        a = analyze(_mlp(0), (x, y), (xt, yt), eps=0.2, complexity=False, **FAST)
        autoattack = sys.modules["autoattack"]

        assert (
            a.attack.autoattack and ("Linf", 0.2, "standard", "cpu") in autoattack.AutoAttack.calls
        )
        assert "AutoAttack" in a.test.attack_acc
        assert a.test.robust_acc.mean <= min(e.mean for e in a.test.attack_acc.values()) + 1e-12
        off = analyze(
            _mlp(0), (x, y), (xt, yt), eps=0.2, autoattack="off", complexity=False, **FAST
        )
        assert "AutoAttack" not in off.test.attack_acc
    finally:
        sys.modules.pop("autoattack", None)  # later tests must not see the stand-in


# ----------------------------------------------------------------------------- run folders
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.trainers import train

    cfg = TrainConfig(
        dataset="digits", n_train=60, n_test=30, model="mlp", model_kwargs={"hidden": [8]},
        epochs=2, attack_steps=1, eval_attack_steps=2, batch_size=30, lr=0.0, num_threads=1,
    )  # fmt: skip
    run_dir = tmp_path_factory.mktemp("runs") / "zero-lr"
    train(cfg, run_dir, progress=False, callbacks=[epoch_checkpoint_callback()])
    return cfg, run_dir


def test_epoch_checkpoints_are_listed_once_per_epoch(tiny_run) -> None:
    _, run_dir = tiny_run
    saved = run_checkpoints(run_dir)
    assert [c.epoch for c in saved] == [1, 2]
    assert set(saved[-1].names) == {"epoch-0002.pt", "last.pt"}


def test_initial_model_is_the_trainers_initialization(tiny_run) -> None:
    """With lr = 0 the trained weights never move, so every checkpoint holds the init."""
    cfg, run_dir = tiny_run
    import random

    rng, py_rng = torch.get_rng_state(), random.getstate()
    np_rng = np.random.get_state()  # noqa: NPY002 - the legacy global state is what we check
    init = initial_model(cfg)
    # the caller's RNGs are left alone
    assert torch.equal(torch.get_rng_state(), rng) and random.getstate() == py_rng
    assert np.array_equal(np.random.get_state()[1], np_rng[1])  # noqa: NPY002
    last = model_from_checkpoint(cfg, run_dir / "checkpoints" / "last.pt")
    for (k, v), (k0, v0) in zip(last.state_dict().items(), init.state_dict().items(), strict=True):
        assert k == k0 and torch.equal(v, v0)


# ----------------------------------------------------------------------------- output
def test_write_analysis_files_and_rewrite(result: Analysis, tmp_path) -> None:
    out = tmp_path / "an"
    files = write_analysis([result], out, command="robmem analyze x --out an", source="test")
    for f in files:
        assert (out / f).is_file(), f
    doc = json.loads((out / JSON_FILE).read_text())
    assert [s["id"] for s in doc["sections"]] == ["E1", "E2", "B1", "E5", "B2", "PE"]
    page = (out / HTML_FILE).read_text()
    assert page.count("Re-create: <code>robmem analyze x --out an</code>") == 6
    assert "data:image/png;base64," in page
    rows = (out / "per_example.csv").read_text().splitlines()
    assert len(rows) == 1 + 60 + 40 and rows[0].startswith("split,index,label")
    # a second analysis may replace the first; a foreign folder is refused
    b1_only = write_analysis([result, result], out, command="c", source="test")
    assert "figures/b1_gap_vs_bounds.png" in b1_only and (out / MARKER_FILE).is_file()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds no previous robmem analysis"):
        write_analysis([result], foreign, command="c", source="test")
    assert (foreign / "notes.txt").read_text() == "mine"


def test_numbers_are_finite_or_flagged(result: Analysis) -> None:
    nums = result.numbers()
    assert nums["train_clean_acc_n"] == 60
    for key in ("robust_acc_gap", "b1_first_order_bound", "b2_vc_bound"):
        assert math.isfinite(nums[key])
