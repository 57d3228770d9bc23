"""Helpers shared by the claim modules: smoke-tier note, per-tier config builders, setups."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bridge.plots import Setup

#: Added to every smoke-tier result: smoke runs check the pipeline, not the science.
SMOKE_NOTE = (
    "smoke tier: seconds-long runs that exercise the pipeline; its numbers are not evidence "
    "for or against the claim (use --tier cpu or gpu)."
)

#: Threads used by cpu-tier training. One: the small MLPs gain little from a second thread,
#: and a loaded 2-core machine slows down sharply with oversubscribed threads.
CPU_THREADS: int = 1

GPU_REASON_DATA = (
    "needs CIFAR-10 (torchvision downloads it to the default data root on first use) and a GPU"
)


def tier_notes(tier: str) -> list[str]:
    """Notes every result at ``tier`` carries."""
    return [SMOKE_NOTE] if tier == "smoke" else []


def pct(value: float | None) -> float | None:
    """Fraction → percent (None stays None)."""
    return None if value is None else 100.0 * float(value)


def setup_for(config: Any, tier: str, *, data: str | None = None) -> Setup:
    """Caption setup (data, model, ε, seeds, tier) of a TrainConfig."""
    hidden = config.model_kwargs.get("hidden") if config.model_kwargs else None
    model = config.model + (f" {list(hidden)}" if hidden else "")
    n_train = f"n_train={config.n_train}" if config.n_train else "full train split"
    return Setup(
        data=data or f"{config.dataset} ({n_train})",
        model=f"{model}, {config.method} training, {config.epochs} epochs",
        eps=f"ℓ{config.norm} {config.epsilon:.4g} (train), PGD-{config.eval_attack_steps} eval",
        seeds=f"seed {config.seed}, data seed {config.data_seed}",
        tier=tier,
    )


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall τ-b of two sequences (nan when either is constant or shorter than 2)."""
    from scipy.stats import kendalltau

    if len(a) < 2 or len(set(a)) < 2 or len(set(b)) < 2:
        return float("nan")
    return float(kendalltau(a, b).statistic)


def finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
