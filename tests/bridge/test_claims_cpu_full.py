"""The cpu-full designs (issue 12) reach each of their verdicts from hand-made run records.

At cpu-full E3/E4 are judged over a phase diagram of cells, E6 over label-noise cells with the
late-fit mechanism test, E5/B4 per architecture with a control family, B1 on MNIST-1D models and
E1/E2 on MNIST-1D too. Each test below builds records for every family the claim reads at
cpu-full and checks that its verdict rule can give reproduced, not reproduced, inconclusive and
not applicable; no training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pytest

from robmem.bridge.claims import at_small, noise_rates, overfitting, random_labels
from robmem.bridge.claims.common import PAIRED_SEEDS
from robmem.bridge.criteria import phase_verdict
from robmem.bridge.records import EpochRow, FitRecord, LandscapeCurve, Records, RunRecord
from robmem.bridge.registry import ClaimContext, all_claims
from robmem.bridge.verdicts import INCONCLUSIVE, NOT_APPLICABLE, NOT_REPRODUCED, REPRODUCED

TIER = "cpu-full"
ALL = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_APPLICABLE)
_J = [0.0, 0.01, -0.01, 0.02, -0.02]  # per-seed jitter, so that CIs have width


def _config(**kw):
    from robmem.empirics.config import TrainConfig

    return TrainConfig(**kw).to_dict()


def _rec(family, seed, rows, **kw) -> RunRecord:
    kw.setdefault("config", _config(seed=seed, milestones=[2, 3]))
    return RunRecord(family=family, seed=seed, rows=tuple(rows), **kw)


def _row(epoch=1, rt=0.5, rte=0.5, ct=0.5, cte=0.5, **losses) -> EpochRow:
    return EpochRow(
        epoch, train_clean_acc=ct, train_robust_acc=rt, test_clean_acc=cte, test_robust_acc=rte,
        **losses,
    )  # fmt: skip


def _result(claim_id: str, records: Records, tmp_path):
    claim = next(c for c in all_claims() if c.id == claim_id)
    result = claim.evaluate(ClaimContext(TIER, tmp_path, records))
    claim.check_verdict(result.verdict)
    for est in result.estimates.values():
        assert est.n >= 1 and est.method
    assert result.figures or claim_id == "E5"  # E5's figure is B4's (same runs)
    return result


def _evaluate(claim_id: str, records: Records, tmp_path) -> str:
    return _result(claim_id, records, tmp_path).verdict


# ---------------------------------------------------------------- phase rule
def test_phase_verdict_rule() -> None:
    assert phase_verdict([REPRODUCED, NOT_APPLICABLE]) == REPRODUCED
    assert phase_verdict([REPRODUCED, NOT_REPRODUCED]) == INCONCLUSIVE
    assert phase_verdict([NOT_APPLICABLE, NOT_APPLICABLE]) == NOT_APPLICABLE
    with pytest.raises(ValueError, match="cell_verdicts"):
        phase_verdict([])


# ---------------------------------------------------------------- E3 / E4 phase diagram
CELLS = random_labels.PHASE_CELLS[TIER]
PHASE_SEEDS = random_labels.PHASE_SEEDS[TIER]
PGD, TR6, TR1 = random_labels.PGD, random_labels.TR6, random_labels.TR1


def _phase(cell_values: Callable[[int], dict[str, float]]) -> Records:
    """Per cell index: PGD robust train ``pgd``, TRADES β=6 robust/clean train ``tr``, β=1
    robust train ``tr1``, gradient and smoothness ratios TR6/PGD ``grad``, ``smooth``."""
    recs = Records()
    for i, cell in enumerate(CELLS):
        v = {"pgd": 0.97, "tr": 0.1, "tr1": 0.9, "grad": 10.0, "smooth": 10.0} | cell_values(i)
        for k, s in enumerate(PHASE_SEEDS):
            d = _J[k]
            fam = random_labels.cell_family
            recs.add(
                _rec(
                    fam(PGD, cell),
                    s,
                    [_row(150, v["pgd"] + d, 0.0, 1.0, 0.1 + d)],
                    epoch_grad_sq=(1.0,) * 9,
                    measures={"smoothness": {"ratio": 1.0}},
                )
            )
            recs.add(
                _rec(
                    fam(TR6, cell),
                    s,
                    [_row(150, v["tr"] + d, 0.0, v["tr"] + d, 0.1)],
                    epoch_grad_sq=(v["grad"] * (1 + d),) * 9,
                    measures={"smoothness": {"ratio": v["smooth"] * (1 + d)}},
                )
            )
            recs.add(_rec(fam(TR1, cell), s, [_row(150, v["tr1"] + d, 0.0, 1.0, 0.1)],
                          epoch_grad_sq=(1.0,) * 9))  # fmt: skip
    return recs


def _small_n_only(i: int) -> dict[str, float]:
    """TRADES fails only in the digits N = 200 cells (a trend with N)."""
    return {} if CELLS[i].n_train == 200 else {"tr": 0.8}


E3 = {
    REPRODUCED: lambda: _phase(lambda i: {}),
    NOT_REPRODUCED: lambda: _phase(lambda i: {"tr": 0.8}),
    INCONCLUSIVE: lambda: _phase(_small_n_only),
    NOT_APPLICABLE: lambda: _phase(lambda i: {"pgd": 0.12}),
}
E4 = {
    REPRODUCED: lambda: _phase(lambda i: {}),
    NOT_REPRODUCED: lambda: _phase(lambda i: {"smooth": 0.1}),
    # the smoothness ratio goes one way in half the cells and the other way in the rest
    INCONCLUSIVE: lambda: _phase(lambda i: {"smooth": 0.1 if i % 2 else 10.0}),
    NOT_APPLICABLE: lambda: _phase(lambda i: {"tr": 0.8}),
}


@pytest.mark.parametrize("verdict", ALL)
def test_e3_phase_diagram(verdict, tmp_path) -> None:
    assert _evaluate("E3", E3[verdict](), tmp_path) == verdict


@pytest.mark.parametrize("verdict", ALL)
def test_e4_phase_diagram(verdict, tmp_path) -> None:
    assert _evaluate("E4", E4[verdict](), tmp_path) == verdict


def test_phase_summary_names_cells(tmp_path) -> None:
    claim = next(c for c in all_claims() if c.id == "E3")
    res = claim.evaluate(ClaimContext(TIER, tmp_path, E3[INCONCLUSIVE]()))
    assert f"{REPRODUCED} in digits N=200" in res.summary
    assert "mnist1d N=500" in res.summary
    assert len(res.table) == len(CELLS)
    assert (tmp_path / "e3_phase_diagram.png").is_file()


def test_cell_outcomes_count_seeds() -> None:
    recs = [_rec("x", s, [_row(1, rt, 0.0, ct, 0.1)]) for s, (rt, ct) in
            enumerate([(0.1, 0.1), (0.15, 0.12), (0.9, 0.9)])]  # fmt: skip
    out = random_labels.cell_outcomes(recs, recs, None)
    assert out["trades6_fails_share"] == pytest.approx(2 / 3)
    assert out["trades6_fails"] is True  # 2 of 3 seeds
    assert out["pgd_memorizes_share"] == pytest.approx(1 / 3)
    assert out["pgd_memorizes"] is False


def test_phase_requests_carry_the_probe() -> None:
    reqs = random_labels.rl_requests(TIER, (PGD, TR6, TR1))
    assert len(reqs) == len(CELLS) * 3 * len(PHASE_SEEDS)
    probed = {r.family for r in reqs if r.measures}
    assert all(not f.startswith("rl-trades-b1") for f in probed)
    assert len(probed) == 2 * len(CELLS)
    bn = [r for r in reqs if r.family.endswith("-bn")]
    assert bn and all(r.config.model_kwargs.get("batch_norm") for r in bn)
    m1d = [r for r in reqs if r.config.dataset == "mnist1d"]
    assert m1d and all("mean" in r.config.model_kwargs for r in m1d)


# ---------------------------------------------------------------- E6 cells
E6_SEEDS = PAIRED_SEEDS[TIER]
N_FIT = 40


def _fit(late_flipped: bool, k: int) -> tuple[FitRecord, tuple[bool, ...]]:
    """Fit over epochs 1..4 (decay after epoch 2): 10 examples fitted late; those are the
    flipped ones (``late_flipped``) or other ones."""
    flipped = tuple(i < 10 for i in range(N_FIT))
    late = {i for i in range(N_FIT) if (i < 10) == late_flipped and i % 4 != k % 4}
    late = set(sorted(late)[:10])
    correct = tuple(tuple(int(i not in late or e >= 3) for i in range(N_FIT)) for e in (1, 2, 3, 4))
    return FitRecord((1, 2, 3, 4), correct), flipped


def _e6(pgd_curve, te_curve, late_flipped=(True,) * 5, noise_cell_drop: float = 0.0) -> Records:
    recs = Records()
    for noise in overfitting.E6_NOISE[TIER]:
        for k, s in enumerate(E6_SEEDS):
            d = _J[k]
            extra = noise_cell_drop if noise > 0 else 0.0
            pc = [
                v + d - (extra if e == len(pgd_curve) - 1 else 0) for e, v in enumerate(pgd_curve)
            ]
            tc = [v + d for v in te_curve]
            fit, flipped = _fit(late_flipped[k], k)
            recs.add(
                _rec(
                    overfitting._family("pgd", noise),
                    s,
                    [_row(e + 1, rt=0.9, rte=v) for e, v in enumerate(pc)],
                    fit=fit,
                    flipped=flipped,
                )
            )
            recs.add(_rec(overfitting._family("pgd-te", noise), s,
                          [_row(e + 1, rt=0.9, rte=v) for e, v in enumerate(tc)]))  # fmt: skip
    return recs


E6 = {
    REPRODUCED: lambda: _e6([0.3, 0.5, 0.45, 0.4], [0.3, 0.5, 0.49, 0.48]),
    NOT_REPRODUCED: lambda: _e6([0.3, 0.4, 0.45, 0.5], [0.3, 0.4, 0.45, 0.5]),
    # overfitting and TE as claimed, but the late-fitted sets avoid the flipped labels in some
    # seeds and are them in others: the mechanism straddles
    INCONCLUSIVE: lambda: _e6(
        [0.3, 0.5, 0.45, 0.4], [0.3, 0.5, 0.49, 0.48], (True, False, True, False, True)
    ),
    NOT_APPLICABLE: lambda: _e6([0.1, 0.12, 0.11, 0.1], [0.1, 0.12, 0.11, 0.1]),
}


@pytest.mark.parametrize("verdict", ALL)
def test_e6_cells(verdict, tmp_path) -> None:
    assert _evaluate("E6", E6[verdict](), tmp_path) == verdict


def test_e6_mechanism_is_not_reproduced_when_late_sets_avoid_flips(tmp_path) -> None:
    recs = _e6([0.3, 0.5, 0.45, 0.4], [0.3, 0.5, 0.49, 0.48], (False,) * 5)
    claim = next(c for c in all_claims() if c.id == "E6")
    res = claim.evaluate(ClaimContext(TIER, tmp_path, recs))
    est = res.estimates["noise0.2:late_flipped_log_odds_ratio"]
    assert est.high < 0
    # noise-0 cell reproduced, noise-0.2 cell not: the cells disagree
    assert res.verdict == INCONCLUSIVE
    assert (tmp_path / "e6_robust_loss.png").is_file()


def test_late_mask_reads_stable_fits() -> None:
    fit = FitRecord((1, 2, 3, 4), ((1, 0, 0, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0)))
    r = _rec("x", 0, [_row(4)], fit=fit)
    # example 0 fitted from epoch 1; 1 from 3 (late); 2 flips back at 3, stable from 4 (late);
    # 3 forgotten at the end (never stably fitted: not late)
    assert overfitting.late_mask(r, 2) == [False, True, True, False]
    with pytest.raises(ValueError, match="fit record"):
        overfitting.late_mask(_rec("x", 0, [_row(4)]), 2)


# ---------------------------------------------------------------- E5 / B4 per architecture
RATES = noise_rates.NOISE_RATES[TIER]
NSEEDS = noise_rates.CPU_FULL_SEEDS


def _measures(n_tracking: int) -> Callable[[float], dict[str, float]]:
    keys = ["param_norm", "path_norm", "log_prod_of_spec", "margin"]

    def f(gap: float) -> dict[str, float]:
        out = {}
        for k, key in enumerate(keys):
            oriented = gap if k < n_tracking else -gap
            out[key] = -oriented if key == "margin" else oriented
        return out

    return f


def _noise(
    gap_of: Callable[[float, int], float], tracking: dict[str, int], clean0: float = 0.9
) -> Records:
    recs = Records()
    for arch in noise_rates.ARCHS[TIER]:
        for rate in RATES:
            for s in NSEEDS:
                gap = gap_of(rate, s)
                cte = clean0 if rate == 0 else 0.5
                rows = [_row(150, rt=1.0, rte=1.0 - gap / 100.0, ct=1.0, cte=cte)]
                m = {"complexity": _measures(tracking[arch])(gap)}
                recs.add(_rec(noise_rates._family(rate, arch), s, rows, measures=m))
    for n in noise_rates.CONTROL_N[TIER]:
        if n == 200:
            continue
        for s in NSEEDS:
            gap = 30.0 - n / 20.0 + s
            rows = [_row(150, rt=1.0, rte=1.0 - gap / 100.0, ct=1.0, cte=0.9)]
            m = {"complexity": _measures(1)(gap)}
            recs.add(_rec(noise_rates._family(0.0, "mlp", n), s, rows, measures=m))
    return recs


def _gap_up(rate: float, s: int) -> float:
    return 5.0 + 50.0 * rate + s


E5 = {
    REPRODUCED: lambda: _noise(_gap_up, {"mlp": 1, "mlp-bn": 1}),
    NOT_REPRODUCED: lambda: _noise(_gap_up, {"mlp": 3, "mlp-bn": 4}),
    INCONCLUSIVE: lambda: _noise(_gap_up, {"mlp": 1, "mlp-bn": 4}),  # architectures disagree
    NOT_APPLICABLE: lambda: _noise(_gap_up, {"mlp": 1, "mlp-bn": 1}, clean0=0.12),
}
B4 = {
    REPRODUCED: lambda: _noise(_gap_up, {"mlp": 1, "mlp-bn": 1}),
    NOT_REPRODUCED: lambda: _noise(lambda q, s: 60.0 - 50.0 * q + s, {"mlp": 1, "mlp-bn": 1}),
    INCONCLUSIVE: lambda: _noise(
        lambda q, s: float((RATES.index(q) * 7 + s * 5) % 11), {"mlp": 1, "mlp-bn": 1}
    ),
    NOT_APPLICABLE: lambda: _noise(_gap_up, {"mlp": 1, "mlp-bn": 1}, clean0=0.12),
}


@pytest.mark.parametrize("verdict", ALL)
def test_e5_per_architecture(verdict, tmp_path) -> None:
    res = _result("E5", E5[verdict](), tmp_path)
    assert res.verdict == verdict
    if verdict == REPRODUCED:  # the control family is reported, not judged
        assert res.numbers["control_tau_N_vs_gap"] < 0  # the gap falls with N in the fixture
        assert any("control τ (noise 0, N varied)" in row for row in res.table)


@pytest.mark.parametrize("verdict", ALL)
def test_b4_per_architecture(verdict, tmp_path) -> None:
    assert _evaluate("B4", B4[verdict](), tmp_path) == verdict


# ---------------------------------------------------------------- B1 on MNIST-1D
def _b1(flat: Callable[[float, int], tuple[float, float]]) -> Records:
    recs = Records()
    i = 0
    eps = at_small.ref_eps("mnist1d")
    for _, fam, run_config in noise_rates._b1_mnist1d_runs(TIER):
        n, q = run_config.n_train, run_config.label_noise
        for s in at_small.MNIST1D_SEEDS:
            gap = 0.5 + 2.0 * q + 500.0 / n + 0.1 * s
            g_tr, g_te = flat(gap, i)
            cfg = _config(seed=s, dataset="mnist1d", epsilon=eps)
            land = {60: {
                "train": LandscapeCurve((0.0, eps), (g_tr, g_tr), (0.0, eps * g_tr), 400),
                "test": LandscapeCurve((0.0, eps), (g_te, g_te), (0.0, eps * g_te), 400),
            }}  # fmt: skip
            rows = [
                _row(
                    60,
                    rt=1.0,
                    rte=0.3,
                    ct=1.0,
                    cte=0.6,
                    train_robust_loss=0.1,
                    test_robust_loss=0.1 + gap,
                    test_clean_loss=1.0 + (7 * i) % 5,
                )
            ]
            recs.add(_rec(fam, s, rows, config=cfg, landscape=land))  # fmt: skip
            i += 1
    return recs


_SCRAMBLE = [3, 11, 7, 16, 0, 9, 14, 5, 1, 12, 17, 8, 2, 15, 6, 10, 4, 13]
B1 = {
    REPRODUCED: lambda: _b1(lambda gap, i: (0.1, 1.0 + gap)),
    NOT_REPRODUCED: lambda: _b1(lambda gap, i: (0.1, 100.0 - gap)),
    INCONCLUSIVE: lambda: _b1(lambda gap, i: (0.1, 1.0 + _SCRAMBLE[i])),
    NOT_APPLICABLE: lambda: _b1(lambda gap, i: (50.0 + gap, 1.0 + gap)),
}


@pytest.mark.parametrize("verdict", ALL)
def test_b1_on_mnist1d(verdict, tmp_path) -> None:
    assert _evaluate("B1", B1[verdict](), tmp_path) == verdict


def test_b1_reuses_e1_mnist1d_runs() -> None:
    claim = next(c for c in all_claims() if c.id == "B1")
    fams = {r.family for r in claim.requests(TIER)}
    assert "e1-at-mnist1d" in fams
    assert all(r.config.dataset == "mnist1d" for r in claim.requests(TIER))
    e1 = {r.cache_name: r.key() for r in at_small.e1_requests(TIER)}
    shared = [r for r in claim.requests(TIER) if r.family == "e1-at-mnist1d"]
    assert len(shared) == len(at_small.MNIST1D_SEEDS)
    assert all(r.key() == e1[r.cache_name] for r in shared)  # the same runs, trained once


# ---------------------------------------------------------------- E1 / E2 with MNIST-1D
def _curve(offset: float, grid: Sequence[float]) -> LandscapeCurve:
    lc = tuple(max(0.0, r - offset) for r in grid)
    return LandscapeCurve(tuple(grid), tuple(1.0 for _ in grid), lc, 400)


def _e1e2(m1d_rt: float, at_offset: Callable[[float], float], std_offset: float) -> Records:
    recs = Records()
    for s in PAIRED_SEEDS[TIER]:  # digits: 5 seeds
        recs.add(_rec("e1-at-digits", s, [_row(30, 0.95 + _J[s], 0.6, 1.0, 0.92)]))
        recs.add(_rec("e1-std-digits", s, [_row(30, 0.1, 0.05, 1.0, 0.95)]))
    ref = at_small.ref_eps("mnist1d")
    grid = at_small.knee_grid(ref)
    for s in at_small.MNIST1D_SEEDS:
        d = _J[s]
        for eps in (ref, *at_small.E2_EXTRA_EPS[TIER]):
            fam = at_small._fam("at", "mnist1d", None if eps == ref else eps)
            c = _curve(at_offset(eps), grid)
            recs.add(_rec(fam, s, [_row(60, m1d_rt + d, 0.2, 1.0, 0.7)],
                          landscape={60: {"train": c, "test": c}}))  # fmt: skip
        c = _curve(std_offset, grid)
        recs.add(_rec(at_small._fam("std", "mnist1d"), s, [_row(60, 0.1, 0.0, 1.0, 0.65)],
                      landscape={60: {"train": c, "test": c}}))  # fmt: skip
    return recs


def test_e1_combines_digits_and_mnist1d(tmp_path) -> None:
    assert _evaluate("E1", _e1e2(0.99, lambda e: e, 0.0), tmp_path) == REPRODUCED
    # MNIST-1D robust train 0.25: robust gap 5 pts < 2 × clean gap 30 → not reproduced there
    assert _evaluate("E1", _e1e2(0.25, lambda e: e, 0.0), tmp_path) == INCONCLUSIVE


@pytest.mark.parametrize(
    ("verdict", "at_offset", "std_offset", "rt"),
    [
        (REPRODUCED, lambda e: e, 0.0, 0.99),
        (NOT_REPRODUCED, lambda e: 2.5 * at_small.ref_eps("mnist1d") - e, 0.0, 0.99),
        (NOT_APPLICABLE, lambda e: e, 0.0, 0.3),
    ],
)
def test_e2_knee_on_mnist1d(verdict, at_offset, std_offset, rt, tmp_path) -> None:
    assert _evaluate("E2", _e1e2(rt, at_offset, std_offset), tmp_path) == verdict


def test_cpu_full_mnist1d_settings() -> None:
    from robmem.empirics.data import mnist1d_eps_to_raw

    cfg = at_small.at_config(TIER, "mnist1d")
    assert cfg.dataset == "mnist1d" and cfg.epsilon == at_small.ref_eps("mnist1d")
    assert math.isclose(mnist1d_eps_to_raw(cfg.epsilon), 12 * cfg.epsilon)
    assert "std" in cfg.model_kwargs  # standardization inside the model
    e6 = overfitting.e6_config(TIER, "pgd-te", 0.2)
    assert e6.augment and e6.weight_decay == 5e-4 and e6.label_noise == 0.2
    assert e6.te_start_epoch < e6.milestones[0] < e6.te_end_epoch <= e6.milestones[1]
    assert e6.epochs - e6.milestones[0] >= e6.epochs // 2  # a long post-decay phase


def test_smoothness_measurement_on_a_trained_run(tmp_path) -> None:
    """The E4 post-training measurement runs the probe on the run's own objective and data."""
    import dataclasses

    from robmem.bridge.claims.measurements import smoothness_of_run
    from robmem.bridge.claims.runs import MEASUREMENTS, measure
    from robmem.empirics.trainers import train

    assert MEASUREMENTS["smoothness"].endswith(":smoothness_of_run")
    cfg = random_labels.rl_config("smoke", "trades", 6.0)
    cfg = dataclasses.replace(cfg, epochs=1, n_train=20, n_test=20, eval_every=1)
    train(cfg, tmp_path / "run", progress=False)
    out = smoothness_of_run(tmp_path / "run", cfg, h=1e-2, n_points=8, n_directions=2)
    assert out["method"] == "trades" and out["trades_beta"] == 6.0
    assert len(out["ratios"]) == 2 and all(math.isfinite(r) and r > 0 for r in out["ratios"])
    again = smoothness_of_run(tmp_path / "run", cfg, h=1e-2, n_points=8, n_directions=2)
    assert again["ratio"] == out["ratio"]  # seeded: the same directions and attack starts
    with pytest.raises(ValueError, match="n_points"):
        smoothness_of_run(tmp_path / "run", cfg, h=1e-2, n_points=0, n_directions=1)
    with pytest.raises(ValueError, match="smoothness"):
        measure("smoothnes", h=1.0)
