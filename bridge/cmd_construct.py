"""``robmem construct``: build the SPEC T1 construction on a data set and certify it.

Prints one short table: N (memorized / total), d, R (opposite-label separation in the
norm that sets the bumps), δ, non-zero parameters (and the closed form), certified %,
refuted count, seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from robmem.theory.construction import L2_METHODS, SUBSETS
from robmem.theory.network import ReLUNetwork
from robmem.theory.pipeline import construct_and_certify
from robmem.theory.separation import synthetic_separated_points

#: Data sets this command knows.
DATASETS: tuple[str, ...] = ("digits", "mnist10k", "synthetic")
#: Clean classifiers this command can fit.
CLEANS: tuple[str, ...] = ("none", "linear")
#: Ridge penalty of the least-squares linear f_clean (one-vs-rest targets ±1);
#: a small value that only guards against a singular XᵀX.
RIDGE_PENALTY = 1e-3
#: Defaults of the synthetic data set: dimension and pairwise separation.
SYNTHETIC_DIM = 8
SYNTHETIC_SEPARATION = 0.2


def _load(name: str, n: int | None, seed: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        x, y = bunch.data / 16.0, bunch.target.astype(np.int64)
    elif name == "mnist10k":
        from robmem.empirics.idx import load_mnist_test_idx

        images, labels = load_mnist_test_idx()
        x, y = images.reshape(images.shape[0], -1), labels
    else:
        count = 200 if n is None else n
        return synthetic_separated_points(count, dim, SYNTHETIC_SEPARATION, 2, seed)
    if n is not None:
        if n < 1:
            raise ValueError(f"-n: must be >= 1, got {n}")
        x, y = x[:n], y[:n]
    return x, y


def linear_clean(x: np.ndarray, y: np.ndarray) -> ReLUNetwork:
    """Least-squares linear classifier (ridge, one-vs-rest ±1 targets) as a depth-1 network."""
    classes = np.unique(y)
    binary = set(classes.tolist()) <= {-1, 1}
    targets = (
        y[:, None].astype(np.float64)
        if binary
        else np.where(y[:, None] == np.arange(int(y.max()) + 1)[None, :], 1.0, -1.0)
    )
    design = np.hstack([x, np.ones((x.shape[0], 1))])
    gram = design.T @ design + RIDGE_PENALTY * np.eye(design.shape[1])
    coef = np.linalg.solve(gram, design.T @ targets)
    return ReLUNetwork([coef[:-1].T], [coef[-1]])


def run(args: argparse.Namespace) -> int:
    """Build, certify, print the table; exit code 0 iff every ball is certified."""
    if args.delta is None or not args.delta > 0:
        raise ValueError(f"--delta: must be > 0, got {args.delta}")
    start = time.perf_counter()
    x, y = _load(args.data, args.n, args.seed, args.dim)
    clean_name = args.clean
    if args.subset == "small-margin" and clean_name == "none":
        clean_name = "linear"
    clean = linear_clean(x, y) if clean_name == "linear" else None
    report = construct_and_certify(
        x, y, args.delta, args.norm, clean=clean, subset=args.subset,
        l2_method=args.l2_method, teeth=args.teeth, outside_seed=args.seed,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    model, result, outside = report.model, report.certification, report.outside
    sep = model.separation
    rows = [
        ("data", args.data),
        ("N (memorized/total)", f"{model.n_centres}/{x.shape[0]}"),
        ("d", str(model.dim)),
        (f"R (ℓ{sep.norm} separation)", f"{sep.distance:.6g} (pair {sep.i},{sep.j})"),
        ("δ", f"{args.delta:g} (ℓ{model.norm})"),
        (
            "distance",
            model.distance.kind + (f", m={model.distance.teeth}" if model.distance.teeth else ""),
        ),
        ("f_clean", clean_name),
        ("parameters (non-zero)", str(report.params)),
        ("parameters (closed form)", str(report.closed_form or "-")),
        (
            "certified",
            f"{100 * result.certified_fraction:.2f}% ({result.n_certified}/{x.shape[0]})",
        ),
        ("refuted", str(result.n_refuted)),
        ("worst margin (lower bound)", f"{result.worst_margin_lower:.6g}"),
        ("f̂ = f_clean outside β-balls", "-" if outside is None else str(outside.holds)),
        ("time (s)", f"{elapsed:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    ok = result.certified_fraction == 1.0 and (outside is None or outside.holds)
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``construct`` sub-command."""
    p = subparsers.add_parser(
        "construct",
        help="build and certify the robust-memorization construction (SPEC T1)",
        description=__doc__,
    )
    p.add_argument("--data", choices=DATASETS, default="digits", help="data set")
    p.add_argument("--delta", type=float, required=True, help="robust radius δ > 0")
    p.add_argument("--norm", choices=("inf", "2"), default="inf", help="ball norm")
    p.add_argument("--subset", choices=SUBSETS, default="all", help="points to memorize")
    p.add_argument("-n", type=int, default=None, help="use the first N points (all by default)")
    p.add_argument("--clean", choices=CLEANS, default="none", help="clean classifier f_clean")
    p.add_argument("--l2-method", choices=L2_METHODS, default="inclusion", help="ℓ2 realisation")
    p.add_argument("--teeth", type=int, default=None, help="sawtooth teeth m (ℓ2 sawtooth)")
    p.add_argument("--seed", type=int, default=0, help="seed (synthetic data, samples)")
    p.add_argument("--dim", type=int, default=SYNTHETIC_DIM, help="dimension of synthetic data")
    p.set_defaults(func=run)
