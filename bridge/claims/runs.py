"""The run store of the report: run requests, cached and resumable runs, typed records (SPEC B5).

A claim asks for :class:`RunRequest` objects (a training config with its seed plus the
measurements to take); the report gathers the requests of all selected claims, drops
duplicates (E1, E2, B2 and B3 share runs), and executes them, in parallel with ``--jobs``.
Each run lives in the run cache (:class:`robmem.bridge.cache.RunCache`) under its request hash:
its trainer folder is the same format as ``robmem train`` and ``robmem sweep`` write, and a
half-finished one is **resumed** with the trainer's exact resume, never deleted. Every
measurement taken during training is written into ``metrics.jsonl`` by a trainer callback, so
it survives a kill too.

The per-tier settings are in each claim module, in one commented table.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from robmem.bridge.records import EpochRow, FitRecord, LandscapeCurve, Records, RunRecord

logger = logging.getLogger(__name__)

#: Bumped when what a cached run returns changes (forces re-runs of old cache entries).
RUNS_FORMAT_VERSION: int = 2

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


@dataclass(frozen=True)
class RunRequest:
    """One training run a claim needs, with the measurements to take on it.

    Attributes
    ----------
    family : str
        Name shared by the seeds of one setting (``"e1-at-digits"``); the record key.
    config : robmem.empirics.config.TrainConfig
        The full config; its ``seed`` is the record's seed.
    landscape, fit : optional measurement specs taken during training
    measures : tuple of (name, params)
        Post-training measurements (:data:`MEASUREMENTS`), each with JSON-able parameters.
    """

    family: str
    config: Any
    landscape: LandscapeSpec | None = None
    fit: FitSpec | None = None
    measures: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = field(default_factory=tuple)

    @property
    def seed(self) -> int:
        return int(self.config.seed)

    @property
    def cache_name(self) -> str:
        return f"{self.family}-s{self.seed}"

    def key(self) -> dict[str, Any]:
        """Cache key of the training run (post-training measures are cached separately)."""
        return {
            "format": RUNS_FORMAT_VERSION,
            "family": self.family,
            "train": self.config.to_dict(),
            "landscape": dataclasses.asdict(self.landscape) if self.landscape else None,
            "fit": dataclasses.asdict(self.fit) if self.fit else None,
        }

    def on_device(self, device: str | None) -> RunRequest:
        """The same request trained on ``device`` (the device is part of the cache key)."""
        if device is None or device == self.config.device:
            return self
        return dataclasses.replace(self, config=dataclasses.replace(self.config, device=device))


def measure(name: str, **params: Any) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """A post-training measurement entry of :attr:`RunRequest.measures`."""
    if name not in MEASUREMENTS:
        raise ValueError(f"measurement must be one of {sorted(MEASUREMENTS)}; got {name!r}")
    return name, tuple(sorted(params.items()))


#: Post-training measurements: name → "module:function". The function takes
#: ``(train_dir: pathlib.Path, config, **params)`` and returns a JSON-able dict.
MEASUREMENTS: dict[str, str] = {
    "complexity": "robmem.bridge.claims.measurements:complexity_of_run",
    "construction": "robmem.bridge.claims.measurements:construction_of_run",
    "smoothness": "robmem.bridge.claims.measurements:smoothness_of_run",
}


def _subset(x: Any, y: Any, n: int, seed: int) -> tuple[Any, Any]:
    import torch

    if n >= len(y):
        return x, y
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(y), generator=gen)[:n].to(x.device)
    return x[idx], y[idx]


def _callbacks(request: RunRequest, progress: Callable[[str], None]) -> list[Any]:
    """Trainer callbacks that write the requested measurements into ``metrics.jsonl``."""
    config = request.config
    callbacks: list[Any] = []
    if request.landscape is not None:
        from robmem.empirics.landscape import landscape_callback

        spec = request.landscape
        n, seed = spec.n_samples, spec.seed
        callbacks.append(
            landscape_callback(
                {
                    "train": lambda c: _subset(c.train_x, c.train_y, n, seed),
                    "test": lambda c: _subset(c.test_x, c.test_y, n, seed),
                },
                spec.eps_grid,
                spec.epochs,
                steps=spec.steps,
                restarts=spec.restarts,
                seed=seed,
            )
        )
    if request.fit is not None:
        from robmem.empirics.attacks import PGD
        from robmem.empirics.memorization import per_example_robust_loss

        attack = PGD(
            config.epsilon, STEP_FRACTION * config.epsilon, request.fit.steps, random_start=True
        )
        fit_epochs = set(request.fit.epochs)

        def fit_callback(c: Any) -> dict[str, Any]:
            if c.epoch not in fit_epochs:
                return {}
            loss, correct = per_example_robust_loss(c.model, c.train_x, c.train_y, attack)
            return {
                "fit/correct": [int(v) for v in correct.tolist()],
                "fit/loss": [round(float(v), 6) for v in loss.tolist()],
            }

        callbacks.append(fit_callback)

    def progress_callback(c: Any) -> dict[str, Any]:
        if c.epoch == 1 or c.epoch % 10 == 0 or c.epoch == config.epochs:
            progress(f"{request.cache_name}: epoch {c.epoch}/{config.epochs}")
        return {}

    callbacks.append(progress_callback)
    return callbacks


def train_or_resume(
    request: RunRequest, train_dir: pathlib.Path, progress: Callable[[str], None]
) -> None:
    """Train ``request`` in ``train_dir``: fresh, resumed (half-finished), or not at all.

    The state machine is the sweep's (:func:`bridge.sweep.run_state`): a completed run is left
    as it is, a partial one is resumed bit-exactly by the trainer, a folder holding another
    config is an error (nothing is deleted).
    """
    import torch

    from robmem.bridge.sweep import SweepRun, run_state
    from robmem.empirics.trainers import train

    state = run_state(SweepRun(request.cache_name, request.config, train_dir))
    if state == "completed":
        return
    if state == "conflict":
        raise RuntimeError(
            f"{train_dir} holds another run's files; remove the cache entry by hand or use "
            "another --cache-dir"
        )
    if state == "partial":
        progress(f"{request.cache_name}: resuming the half-finished run in {train_dir}")
    torch.set_num_threads(request.config.num_threads or torch.get_num_threads())
    train(
        request.config,
        train_dir,
        resume=state == "partial",
        progress=False,
        callbacks=_callbacks(request, progress),
    )


def record_of_run(request: RunRequest, train_dir: pathlib.Path) -> RunRecord:
    """Read a finished trainer folder into a :class:`RunRecord` (without post measures)."""
    import torch

    from robmem.empirics.runs import load_metrics, load_steps

    rows = load_metrics(train_dir)
    evaluated = [EpochRow.from_metrics(r) for r in rows]
    grad_sq: dict[int, list[float]] = {}
    for s in load_steps(train_dir):
        grad_sq.setdefault(int(s["epoch"]), []).append(float(s["grad_norm"]) ** 2)
    epoch_grad_sq = tuple(
        sum(v) / len(v) if v else float("nan") for _, v in sorted(grad_sq.items())
    )
    landscape: dict[int, dict[str, LandscapeCurve]] = {}
    fit_epochs, fit_correct, fit_loss = [], [], []
    for r in rows:
        if "landscape/eps" in r:
            eps = tuple(float(v) for v in r["landscape/eps"])
            landscape[int(r["epoch"])] = {
                split: LandscapeCurve(
                    eps,
                    tuple(float(v) for v in r[f"landscape/{split}/grad_norm_mean"]),
                    tuple(float(v) for v in r[f"landscape/{split}/loss_change_mean"]),
                    request.landscape.n_samples if request.landscape else 0,
                )
                for split in ("train", "test")
                if f"landscape/{split}/grad_norm_mean" in r
            }
        if "fit/correct" in r:
            fit_epochs.append(int(r["epoch"]))
            fit_correct.append(tuple(int(v) for v in r["fit/correct"]))
            fit_loss.append(tuple(float(v) for v in r["fit/loss"]))
    flipped = None
    labels_path = train_dir / "labels.pt"
    if labels_path.is_file():
        labels = torch.load(labels_path, weights_only=True)
        flipped = tuple(bool(v) for v in labels["flipped"].tolist())
    return RunRecord(
        family=request.family,
        seed=request.seed,
        config=request.config.to_dict(),
        rows=tuple(evaluated),
        epoch_grad_sq=epoch_grad_sq,
        landscape=landscape,
        fit=FitRecord(tuple(fit_epochs), tuple(fit_correct), tuple(fit_loss))
        if fit_epochs
        else None,
        flipped=flipped,
    )


def _train_result(
    request: RunRequest, folder: pathlib.Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    train_dir = folder / TRAIN_SUBDIR
    train_or_resume(request, train_dir, progress)
    return {"record": record_of_run(request, train_dir).to_json(), "train_dir": str(train_dir)}


def execute_request(
    request: RunRequest, cache: Any, progress: Callable[[str], None]
) -> tuple[RunRecord, bool]:
    """Train (or resume, or load) ``request`` and take its measures; ``(record, all cached)``.

    The training run and each post-training measure are separate cache entries, so claims
    that need the same run with different measures share the training.
    """
    import importlib

    from robmem.bridge.records import record_from_json

    n_hits = len(cache.hits)
    result = cache.get_or_run(
        request.cache_name, request.key(), lambda folder: _train_result(request, folder, progress)
    )
    train_dir = pathlib.Path(result["train_dir"])
    if not (train_dir / "checkpoints").is_dir():
        raise RuntimeError(f"cache entry of {request.cache_name} lost its run folder {train_dir}")
    all_hit = len(cache.hits) > n_hits
    measures: dict[str, Any] = {}
    for name, params in request.measures:
        module, func = MEASUREMENTS[name].split(":")
        key = {"run": request.key(), "measure": name, "params": [list(kv) for kv in params]}

        def compute(
            _folder: pathlib.Path, name=name, module=module, func=func, params=params
        ) -> dict:
            progress(f"{request.cache_name}: measuring {name}")
            fn = getattr(importlib.import_module(module), func)
            return {"value": fn(train_dir, request.config, **dict(params))}

        n_hits = len(cache.hits)
        measures[name] = cache.get_or_run(f"{request.cache_name}-{name}", key, compute)["value"]
        all_hit = all_hit and len(cache.hits) > n_hits
    record = dataclasses.replace(record_from_json(result["record"]), measures=measures)
    return record, all_hit


def recorded_seconds(request: RunRequest, cache: Any) -> float | None:
    """Seconds of training and per-epoch evaluation that ``request``'s run recorded (the sum
    of the ``time_*`` fields of its ``metrics.jsonl``, over every resumed piece), or ``None``
    when the cache holds no finished run for it. Post-training measures are not included."""
    from robmem.empirics.runs import METRICS, load_metrics

    result = cache.load(request.cache_name, request.key())
    if result is None or not (pathlib.Path(result["train_dir"]) / METRICS).is_file():
        return None
    rows = load_metrics(result["train_dir"])
    return float(
        sum(sum(float(v) for k, v in r.items() if k.startswith("time_") and v) for r in rows)
    )


def _run_one(
    request: RunRequest, cache_root: str, enabled: bool
) -> tuple[dict[str, Any], bool, float]:
    """Worker entry: ``(record JSON, cache hit, seconds)``."""
    from robmem.bridge.cache import RunCache

    start = time.perf_counter()
    record, hit = execute_request(request, RunCache(cache_root, enabled=enabled), logger.info)
    return record.to_json(), hit, time.perf_counter() - start


def merge_requests(requests: Sequence[RunRequest]) -> list[RunRequest]:
    """Distinct runs in first-seen order; requests of one run with different measures are
    merged (their measures united). Two different trainings under one name are an error."""
    unique: dict[str, RunRequest] = {}
    for r in requests:
        seen = unique.get(r.cache_name)
        if seen is None:
            unique[r.cache_name] = r
            continue
        if seen.key() != r.key():
            raise ValueError(
                f"two different runs requested as {r.cache_name!r}; give them different families"
            )
        extra = tuple(m for m in r.measures if m not in seen.measures)
        if extra:
            unique[r.cache_name] = dataclasses.replace(seen, measures=seen.measures + extra)
    return list(unique.values())


def run_requests(
    requests: Sequence[RunRequest],
    cache: Any,
    *,
    jobs: int = 1,
    progress: Callable[[str], None] = lambda message: None,
) -> Records:
    """Execute (or load) every distinct request (:func:`merge_requests`); return the records.

    Parameters
    ----------
    requests : sequence of RunRequest
    cache : robmem.bridge.cache.RunCache
    jobs : int >= 1
        Worker processes (1 = in this process, with per-epoch progress).
    progress : callable
    """
    from robmem.bridge.records import record_from_json

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1; got {jobs!r}")
    todo = merge_requests(requests)
    records = Records()
    total = len(todo)
    if jobs == 1 or total <= 1:
        for i, req in enumerate(todo, 1):
            start = time.perf_counter()
            record, hit = execute_request(req, cache, progress)
            records.add(record)
            how = "cached" if hit else f"done in {time.perf_counter() - start:.0f} s"
            progress(f"[{i}/{total}] {req.cache_name} {how}")
        return records
    import concurrent.futures
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    progress(f"{total} runs on {jobs} worker processes")
    with concurrent.futures.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_run_one, req, str(cache.root), cache.enabled): req for req in todo}
        for i, fut in enumerate(concurrent.futures.as_completed(futures), 1):
            req = futures[fut]
            doc, hit, secs = fut.result()
            (cache.hits if hit else cache.misses).append(req.cache_name)
            records.add(record_from_json(doc))
            progress(
                f"[{i}/{total}] {req.cache_name} " + ("cached" if hit else f"done in {secs:.0f} s")
            )
    return records


def seeds_for(base: Any, seeds: Sequence[int], **overrides: Any) -> list[Any]:
    """``base`` at each seed: the seed varies init, data order, attack RNG and the label-noise
    draw (``label_noise_seed``); the data split (``data_seed``) stays fixed."""
    return [
        dataclasses.replace(base, seed=int(s), label_noise_seed=int(s), **overrides) for s in seeds
    ]


def requests_for(
    family: str,
    base: Any,
    seeds: Sequence[int],
    *,
    landscape: LandscapeSpec | None = None,
    fit: FitSpec | None = None,
    measures: Sequence[tuple[str, tuple[tuple[str, Any], ...]]] = (),
) -> list[RunRequest]:
    """One :class:`RunRequest` per seed of ``base``."""
    return [
        RunRequest(family, cfg, landscape, fit, tuple(measures)) for cfg in seeds_for(base, seeds)
    ]
