"""Training runs shared by the claims, cached by config hash (SPEC B5).

Every run the report needs is a :class:`empirics.config.TrainConfig` plus the measurements
taken during training (landscape at chosen epochs, per-example robust fit). The pair is the
cache key, so a changed config or measurement runs again, and two claims asking for the same
run (E1, E2, B1 and B2 share the AT run) train it once.

The per-tier settings are here, in one place, with their reasons.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

#: Bumped when what a cached run returns changes (forces re-runs of old cache entries).
RUNS_FORMAT_VERSION: int = 1

#: Training radius for 8×8 digits and 28×28 MNIST: [P1] trains MNIST at ε = 0.1 (Fig 2 caption).
EPS_MNIST: float = 0.1
#: PGD step = ε/4 (the [P2]/[R20] ratio 2/255 : 8/255).
STEP_FRACTION: float = 0.25

#: Folder inside a cached run where the trainer writes its run directory.
TRAIN_SUBDIR = "train"


@dataclass(frozen=True)
class LandscapeSpec:
    """Landscape measurements during a run (SPEC E2): radii, epochs, sample counts, search."""

    eps_grid: tuple[float, ...]
    epochs: tuple[int, ...]
    n_samples: int
    steps: int
    restarts: int = 1
    seed: int = 0


@dataclass(frozen=True)
class FitSpec:
    """Per-example robust-fit tracking during a run (SPEC E6): epochs and PGD settings."""

    epochs: tuple[int, ...]
    steps: int


def _subset(x: Any, y: Any, n: int, seed: int) -> tuple[Any, Any]:
    import torch

    if n >= len(y):
        return x, y
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y), generator=gen)[:n].to(x.device)
    return x[idx], y[idx]


def run_training(
    ctx: Any,
    name: str,
    config: Any,
    *,
    landscape: LandscapeSpec | None = None,
    fit: FitSpec | None = None,
) -> dict[str, Any]:
    """Train ``config`` (or load it from the cache) with the requested measurements.

    Parameters
    ----------
    ctx : bridge.registry.ClaimContext
    name : str
        Short run name (cache folder prefix).
    config : empirics.config.TrainConfig
    landscape, fit : optional measurement specs

    Returns
    -------
    dict
        ``metrics`` (rows of ``metrics.jsonl``), ``step_grad_norm`` (per optimisation step),
        ``landscape`` (epoch → split → summary, with ``first_order_violation``), ``fit``
        (tracked epochs, per-example robust loss and correctness), ``train_dir``.
    """
    device = getattr(ctx, "device", None)
    if device is not None and device != config.device:
        # The device is part of the cache key: a GPU run is not reused as a CPU one.
        config = dataclasses.replace(config, device=device)
    key = {
        "format": RUNS_FORMAT_VERSION,
        "train": config.to_dict(),
        "landscape": dataclasses.asdict(landscape) if landscape else None,
        "fit": dataclasses.asdict(fit) if fit else None,
    }

    def execute(folder: pathlib.Path) -> dict[str, Any]:
        import torch

        from empirics.landscape import first_order_violation, landscape_callback
        from empirics.memorization import RobustFitTracker, per_example_robust_loss
        from empirics.runs import load_steps
        from empirics.trainers import train

        train_dir = folder / TRAIN_SUBDIR
        if train_dir.exists():  # a previous attempt died half-way: start that run afresh
            import shutil

            shutil.rmtree(train_dir)
        callbacks = []
        store: dict[int, dict[str, Any]] = {}
        if landscape is not None:
            n, seed = landscape.n_samples, landscape.seed
            callbacks.append(
                landscape_callback(
                    {
                        "train": lambda c: _subset(c.train_x, c.train_y, n, seed),
                        "test": lambda c: _subset(c.test_x, c.test_y, n, seed),
                    },
                    landscape.eps_grid,
                    landscape.epochs,
                    steps=landscape.steps,
                    restarts=landscape.restarts,
                    seed=seed,
                    store=store,
                )
            )
        tracker_box: dict[str, Any] = {}
        if fit is not None:
            from empirics.attacks import PGD

            attack = PGD(
                config.epsilon, STEP_FRACTION * config.epsilon, fit.steps, random_start=True
            )
            fit_epochs = set(fit.epochs)

            def fit_callback(c: Any) -> dict[str, Any]:
                if c.epoch not in fit_epochs:
                    return {}
                tracker = tracker_box.setdefault("t", RobustFitTracker(len(c.train_y)))
                loss, correct = per_example_robust_loss(c.model, c.train_x, c.train_y, attack)
                tracker.record(c.epoch, loss, correct)
                return {"fit/robust_train_acc": float(correct.mean())}

            callbacks.append(fit_callback)

        def progress_callback(c: Any) -> dict[str, Any]:
            if c.epoch == 1 or c.epoch % 5 == 0 or c.epoch == config.epochs:
                ctx.progress(f"{name}: epoch {c.epoch}/{config.epochs}")
            return {}

        callbacks.append(progress_callback)
        torch.set_num_threads(config.num_threads or torch.get_num_threads())
        result = train(config, train_dir, progress=False, callbacks=callbacks)
        out: dict[str, Any] = {
            "metrics": result.metrics,
            "step_grad_norm": [row["grad_norm"] for row in load_steps(train_dir)],
            "train_dir": str(train_dir),
            "landscape": {},
            "fit": None,
        }
        for epoch, splits in store.items():
            out["landscape"][str(epoch)] = {
                split: {
                    **res.summary(),
                    "first_order_violation": first_order_violation(res).tolist(),
                }
                for split, res in splits.items()
            }
        if "t" in tracker_box:
            t = tracker_box["t"]
            out["fit"] = {
                "epochs": t.epochs,
                "loss": t.loss.tolist(),
                "correct": t.correct.astype(int).tolist(),
            }
        return out

    ctx.progress(f"{name}: run (or load from cache)")
    result = ctx.cache.get_or_run(name, key, execute)
    if not pathlib.Path(result["train_dir"]).is_dir():
        # the cache entry was moved: run again rather than use a result without its model
        ctx.cache.enabled, was = False, ctx.cache.enabled
        try:
            result = ctx.cache.get_or_run(name, key, execute)
        finally:
            ctx.cache.enabled = was
    return result


def final_row(result: dict[str, Any]) -> dict[str, Any]:
    """The last evaluated epoch's metrics row of a run result."""
    rows = [r for r in result["metrics"] if r.get("test_clean_acc") is not None]
    if not rows:
        raise RuntimeError("run has no evaluated epoch")
    return rows[-1]


def load_trained_model(result: dict[str, Any], device: str = "cpu") -> tuple[Any, Any]:
    """``(model, config)`` of a cached run's last checkpoint (eval mode, on ``device``)."""
    from empirics.trainers import load_model_from_run

    model, config, _ = load_model_from_run(result["train_dir"], "last", device=device)
    return model, config
