"""Benchmark: build and certify the ℓ∞ robust-memorization construction on MNIST (SPEC T1).

Data: the official MNIST test set (10,000 images, d = 784, ten classes) from
``robmem.empirics.idx``; one output per class. Steps timed separately: the opposite-label ℓ∞
separation λ, the build (blocks + lowering to a sparse ReLUNetwork), and the structural
certification of every ball B_∞(x_i, δ) ∩ [0, 1]^784. Prints one JSON object: seconds per
step, peak resident memory (ru_maxrss), non-zero parameter count, closed-form count,
certified fraction. Hardware: whatever runs it (the issue's target is ≤ 60 s and ≤ 4 GB on
2 CPU cores).

Usage: ``python benchmarks/bench_construction.py [--delta 0.1] [-n 10000]``
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time

import numpy as np

from robmem.empirics.idx import load_mnist_test_idx
from robmem.theory.pipeline import construct_and_certify
from robmem.theory.separation import opposite_label_separation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delta", type=float, default=0.1, help="ℓ∞ radius δ (pixels in [0,1])")
    parser.add_argument("-n", type=int, default=10_000, help="number of MNIST test points")
    parser.add_argument(
        "--spot-check", type=int, default=4, help="points whose ball corners forward() evaluates"
    )
    args = parser.parse_args(argv)
    images, labels = load_mnist_test_idx()
    x = images.reshape(images.shape[0], -1)[: args.n]
    y = labels[: args.n]
    t0 = time.perf_counter()
    sep = opposite_label_separation(x, y, "inf")
    t1 = time.perf_counter()
    built = construct_and_certify(x, y, args.delta, "inf", separation=sep, outside_samples=None)
    net, result, nnz, closed = built.network, built.certification, built.params, built.closed_form
    t3 = time.perf_counter()
    # independent spot check of the lowered network: margins at random ball corners
    rng = np.random.default_rng(0)
    pick = rng.choice(x.shape[0], size=min(args.spot_check, x.shape[0]), replace=False)
    corners = np.clip(
        x[pick] + args.delta * rng.choice([-1.0, 1.0], size=(pick.size, x.shape[1])), 0.0, 1.0
    )
    outs = net.forward(np.vstack([x[pick], corners]))
    lab = np.concatenate([y[pick], y[pick]])
    own = outs[np.arange(lab.size), lab]
    outs[np.arange(lab.size), lab] = -np.inf
    spot_margin = float((own - outs.max(axis=1)).min())
    t4 = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = {
        "benchmark": "bench_construction",
        "spec": "T1",
        "n_points": int(x.shape[0]),
        "dim": int(x.shape[1]),
        "delta": args.delta,
        "norm": "inf",
        "separation_linf": sep.distance,
        "closest_pair": [sep.i, sep.j],
        "separation_s": round(t1 - t0, 3),
        "build_s": round(built.timings["build"], 3),
        "certify_s": round(built.timings["certify"], 3),
        "total_s": round(t3 - t0, 3),
        "peak_memory_gib": round(peak_kib / 2**20, 3),
        "nonzero_parameters": nnz,
        "closed_form_parameters": closed,
        "depth": net.depth,
        "max_width": max(net.widths),
        "certified_fraction": result.certified_fraction,
        "n_refuted": result.n_refuted,
        "worst_margin_lower": result.worst_margin_lower,
        "spot_check_points": int(2 * pick.size),
        "spot_check_min_margin": spot_margin,
        "spot_check_s": round(t4 - t3, 3),
        "python": sys.version.split()[0],
        "machine": platform.machine(),
    }
    print(json.dumps(report, indent=2))
    return 0 if result.certified_fraction == 1.0 and nnz == closed else 1


if __name__ == "__main__":
    sys.exit(main())
