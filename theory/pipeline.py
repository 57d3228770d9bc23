"""Build → certify → count the SPEC T1 construction in one call (:func:`construct_and_certify`).

``robmem construct``, the T1 and B3 claims and ``benchmarks/bench_construction.py`` use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from robmem.theory import counting
from robmem.theory.certificates import CertificationResult, OutsideCertificate
from robmem.theory.certify import certify_construction, certify_outside_balls
from robmem.theory.construction import RobustMemorizer, build_construction
from robmem.theory.network import ReLUNetwork


@dataclass
class ConstructionReport:
    """f̂, its lowered network and checks. ``outside`` (property (b)) is None when skipped or
    without centres, ``closed_form`` None without centres; ``timings`` are seconds of
    ``build`` (with the lowering), ``certify`` and ``outside``."""

    model: RobustMemorizer
    network: ReLUNetwork
    certification: CertificationResult
    outside: OutsideCertificate | None
    params: int
    closed_form: int | None
    timings: dict[str, float]


def closed_form_count(model: RobustMemorizer, clean: ReLUNetwork | None = None) -> int:
    """:func:`theory.counting.construction_parameter_count` of a built model and its f_clean."""
    return counting.construction_parameter_count(
        model.n_centres,
        model.dim,
        n_classes=model.output.n_classes,
        clean_params=0 if clean is None else clean.nonzero_parameter_count(),
        norm=model.norm,
        clean_last_params=0 if clean is None else clean.layer_nonzero_counts()[-1],
        clean_depth=1 if clean is None else clean.depth,
        zero_centre_coordinates=int((model.distance.centres == 0).sum()),
        l2_method="sawtooth" if model.distance.kind == "l2-sawtooth" else "inclusion",
        teeth=max(model.distance.teeth, 1),
    )


def construct_and_certify(
    x: np.ndarray,
    y: np.ndarray,
    delta: float,
    norm: str = "inf",
    *,
    outside_samples: int | None = 64,
    outside_seed: int = 0,
    **build: Any,
) -> ConstructionReport:
    """:func:`~robmem.theory.construction.build_construction` (``build``: its keyword arguments),
    then :func:`~robmem.theory.certify.certify_construction`, property (b) by
    :func:`~robmem.theory.certify.certify_outside_balls` (``outside_samples`` None: skipped) and
    the exact and closed-form parameter counts."""
    t0 = time.perf_counter()
    model = build_construction(x, y, delta, norm, **build)
    net = model.network()
    t1 = time.perf_counter()
    cert = certify_construction(model, x, y, delta, norm)
    t2 = time.perf_counter()
    outside = None
    if outside_samples is not None and model.n_centres:
        outside = certify_outside_balls(model, n_samples=outside_samples, seed=outside_seed)
    t3 = time.perf_counter()
    closed = closed_form_count(model, build.get("clean")) if model.n_centres else None
    timings = {"build": t1 - t0, "certify": t2 - t1, "outside": t3 - t2}
    return ConstructionReport(
        model, net, cert, outside, net.nonzero_parameter_count(), closed, timings
    )
