"""Adversarial training (SPEC E1, E3–E6): one loop for one process and for data parallelism.

:func:`train` runs a :class:`~robmem.empirics.config.TrainConfig` in a run directory
(:mod:`empirics.runs`) with per-epoch metrics, per-step gradient norms, atomic checkpoints and
exact resume. The methods (losses, TE) are in :mod:`robmem.empirics.methods`. Random-label training
(E3) is ``label_noise = 1.0``. Per-epoch metrics: clean and robust (PGD) accuracy and loss on
the training set (with its training labels) and the test set, mean/max global gradient norm,
lr, times. Per-step: loss, gradient norm, lr (``steps.jsonl``; SPEC E4). Under a process
group (:mod:`robmem.empirics.distributed`) the same loop trains data-parallel.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import pathlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robmem.empirics import runs
from robmem.empirics.checkpoint import (
    atomic_write_bytes,
    load_checkpoint,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from robmem.empirics.config import TrainConfig
from robmem.empirics.methods import METHODS, StepOutput, TEBank, method_step, te_weight
from robmem.empirics.schedules import schedule_from_config

logger = logging.getLogger(__name__)

#: Seed offsets so that shuffling and augmentation draw from independent streams.
_SHUFFLE_SEED_OFFSET = 1
_AUGMENT_SEED_OFFSET = 2
#: Steps between progress-bar refreshes (each refresh synchronises with the device).
_PROGRESS_EVERY = 10
CHECKPOINT_FORMAT = 1


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the run stopped, last.pt is the last good one."""


# ----------------------------------------------------------------------------- context
@dataclass
class EpochContext:
    """What an epoch callback sees (after the epoch's evaluation, before its checkpoint).

    A callback ``cb(ctx) -> dict`` returns extra metrics for the epoch's row (``{}`` to add
    nothing). It must not change the model's parameters or mode; it may use the global
    torch RNG (its draws are then part of the checkpointed state, so resume stays exact).
    """

    epoch: int
    config: TrainConfig
    model: nn.Module
    device: torch.device
    train_x: torch.Tensor
    train_y: torch.Tensor  # the labels trained on (noisy when label_noise > 0)
    train_y_original: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    metrics: dict[str, Any]
    run_dir: pathlib.Path
    eval_attack: Any
    te_bank: TEBank | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Callback = Callable[[EpochContext], dict]


# ----------------------------------------------------------------------------- building
def resolve_device(name: str) -> torch.device:
    """Return the torch device for ``"cpu"``, ``"cuda[:N]"`` or ``"auto"``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available")
    return torch.device(name)


@dataclass
class PreparedData:
    """The tensors a run trains and evaluates on."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    train_y_original: torch.Tensor
    flipped: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None
    val_y: torch.Tensor | None
    num_classes: int
    in_shape: tuple[int, ...]


def prepare_data(config: TrainConfig) -> PreparedData:
    """Load the config's data set, carve the validation split and apply label noise."""
    from robmem.empirics.data import load_dataset, with_label_noise

    split = load_dataset(
        config.dataset,
        root=config.data_root,
        download=config.download,
        n_train=config.n_train,
        n_test=config.n_test,
        seed=config.data_seed,
    )
    for name, y in (("train_y", split.train_y), ("test_y", split.test_y)):
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= split.num_classes):
            raise ValueError(f"{name}: labels must lie in 0..{split.num_classes - 1}")
    for name, x in (("train_x", split.train_x), ("test_x", split.test_x)):
        if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
            raise ValueError(f"{name}: inputs must lie in [0, 1]")
    train_x, train_y = split.train_x, split.train_y
    val_x = val_y = None
    if config.val_size:
        n = len(train_y)
        if config.val_size >= n:
            raise ValueError(f"val_size must be < the {n} training examples, got {config.val_size}")
        gen = torch.Generator().manual_seed(config.data_seed)
        perm = torch.randperm(n, generator=gen)
        val_idx, train_idx = perm[: config.val_size], perm[config.val_size :]
        val_x, val_y = train_x[val_idx], train_y[val_idx]
        train_x, train_y = train_x[train_idx], train_y[train_idx]
    if config.label_noise > 0:
        noisy, flipped = with_label_noise(
            train_y, config.label_noise, split.num_classes, config.label_noise_seed
        )
        noisy = torch.as_tensor(noisy, dtype=torch.int64)
        flipped = torch.as_tensor(flipped, dtype=torch.bool)
    else:
        noisy, flipped = train_y.clone(), torch.zeros(len(train_y), dtype=torch.bool)
    return PreparedData(
        train_x=train_x,
        train_y=noisy,
        train_y_original=train_y,
        flipped=flipped,
        test_x=split.test_x,
        test_y=split.test_y,
        val_x=val_x,
        val_y=val_y,
        num_classes=split.num_classes,
        in_shape=tuple(train_x.shape[1:]),
    )


def build_run_model(config: TrainConfig, data: PreparedData) -> nn.Module:
    """Return the config's model for ``data``'s classes and input shape (torch's RNG inits it)."""
    from robmem.empirics.models import build_model

    return build_model(config.model, data.num_classes, data.in_shape, **dict(config.model_kwargs))


def build_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """Return the optimizer the config names (its lr is set per step by the schedule)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov and config.momentum > 0,
        )
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def build_eval_attack(config: TrainConfig):
    """Return the per-epoch evaluation attack: PGD at the training ε, eval mode."""
    from robmem.empirics.attacks import PGD

    return PGD(
        config.epsilon,
        config.eval_step_size,
        config.eval_attack_steps,
        norm=config.norm,
        random_start=True,
        restarts=config.eval_restarts,
        eval_mode=True,
    )


def compiled_step_model(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Return the module the training step (attack included) calls: ``model`` or its compile.

    ``torch.compile(model, mode=config.compile_mode)`` shares parameters and buffers with
    ``model`` (checkpoints and evaluation keep using ``model`` itself, so state-dict keys carry
    no ``_orig_mod.`` prefix). The attack toggles eval mode and ``requires_grad``, which
    compiles one graph per combination on first use and reuses it afterwards.
    """
    if not config.compile:
        return model
    return torch.compile(model, mode=config.compile_mode)


def training_batch(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    index: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the batch ``index`` of the on-device training set, augmented on its device.

    Random crop + flip (:func:`robmem.empirics.data.augment_crop_flip`) when ``config.augment``, in
    the configured memory format; for ``dataset="mnist1d"`` MNIST-1D's own circular shift +
    noise (:func:`robmem.empirics.data.augment_mnist1d`) instead.
    """
    xb, yb = train_x[index], train_y[index]
    if config.augment and config.dataset == "mnist1d":
        from robmem.empirics.data import augment_mnist1d

        xb = augment_mnist1d(xb, generator=generator)
    elif config.augment:
        from robmem.empirics.data import augment_crop_flip

        xb = augment_crop_flip(xb, padding=config.augment_padding, generator=generator)
        xb = _to_memory_format(xb, config)
    return xb, yb


def training_step(
    config: TrainConfig,
    step_model: nn.Module,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    epoch: int,
    bank: TEBank | None,
    autocast: Any,
    lr: float,
    *,
    attack: Any = None,
    rows: tuple[int, int, int] | None = None,
    group: Group | None = None,
) -> tuple[StepOutput, torch.Tensor | None, torch.Tensor]:
    """Run one optimisation step of ``config.method``; return its output, gradient norm and
    the step's totals ``[loss·n, correct_clean, correct_robust, non-finite]`` (float64).

    ``step_model`` computes (``model``, :func:`compiled_step_model` or the data-parallel
    wrapper), ``model`` owns the parameters. With ``rows=(lo, hi, n)`` the batch is this
    rank's shard of a global batch of ``n``: its loss is scaled so that the averaged gradient
    is the global batch's, and the totals are summed over ``group``. When the loss is not
    finite (on any rank) nothing is updated and the norm is ``None`` (one device read).
    """
    for g in optimizer.param_groups:
        g["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    with autocast:
        out = method_step(config, step_model, x, y, index, epoch, bank, attack=attack, rows=rows)
    totals = _step_totals(out, len(y))
    if group is not None:
        group.all_reduce(totals)
    if totals[3] > 0:
        return out, None, totals
    if rows is None:
        out.loss.backward()
    else:
        (out.loss * ((rows[1] - rows[0]) * group.world / rows[2])).backward()
    gnorm = global_grad_norm(model)
    if config.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    return out, gnorm, totals


def _step_totals(out: StepOutput, n: int) -> torch.Tensor:
    """``[loss·n, correct_clean, correct_robust, non-finite]`` (float64) on the loss's device,
    built without host-to-device copies (they would synchronise every step)."""
    loss = out.loss.detach().double()
    zero = loss.new_zeros(())
    counts = [
        zero if c is None else c.detach().double() for c in (out.correct_clean, out.correct_robust)
    ]
    return torch.stack([loss * n, *counts, (~torch.isfinite(loss)).double()])


def _autocast(config: TrainConfig, device: torch.device):
    if config.precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _to_memory_format(x: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    if config.channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


# ----------------------------------------------------------------------------- evaluation
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack,
    *,
    batch_size: int,
    config: TrainConfig | None = None,
    y_extra: dict[str, torch.Tensor] | None = None,
    group: Group | None = None,
) -> dict[str, float]:
    """Return clean and robust accuracy and mean CE loss of ``model`` on ``(x, y)``.

    The model is evaluated in eval mode (its mode is restored afterwards). ``attack=None``
    skips the robust part. ``y_extra`` maps a suffix to other labels for extra clean
    accuracies (e.g. the original labels of a noisy training set). With ``group`` each rank
    evaluates its rows of every batch (attack starts as in one process) and sums are reduced.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    autocast = _autocast(config, device) if config is not None else contextlib.nullcontext()
    n = len(y)
    # Summed on the device in float64 (as the former Python-float sums): one sync at the end.
    # Keyed by the returned names; the *_acc entries hold counts until the division by n.
    zero = torch.zeros((), dtype=torch.float64, device=device)
    sums = dict.fromkeys(("clean_acc", "clean_loss", "robust_acc", "robust_loss"), zero)
    sums.update(dict.fromkeys((f"clean_acc_{key}" for key in y_extra or {}), zero))
    try:
        for start in range(0, n, batch_size):
            lo, hi, rows = 0, len(y[start : start + batch_size]), None
            if group is not None:
                rows = (*group.shard(hi), hi)
                lo, hi = rows[:2]
            xb = x[start + lo : start + hi]
            yb = y[start + lo : start + hi]
            if config is not None:
                xb = _to_memory_format(xb, config)
            with torch.no_grad(), autocast:
                logits = model(xb).float()
            sums["clean_acc"] = sums["clean_acc"] + (logits.argmax(1) == yb).sum()
            sums["clean_loss"] = sums["clean_loss"] + F.cross_entropy(logits, yb, reduction="sum")
            for key, labels in (y_extra or {}).items():
                lb = labels[start + lo : start + hi]
                sums[f"clean_acc_{key}"] = sums[f"clean_acc_{key}"] + (logits.argmax(1) == lb).sum()
            if attack is not None:
                with autocast:
                    x_adv = attack(model, xb, yb, rows=rows)
                with torch.no_grad(), autocast:
                    logits_adv = model(x_adv).float()
                sums["robust_acc"] = sums["robust_acc"] + (logits_adv.argmax(1) == yb).sum()
                sums["robust_loss"] = sums["robust_loss"] + F.cross_entropy(
                    logits_adv, yb, reduction="sum"
                )
    finally:
        model.train(was_training)
    if group is not None:
        sums.update(zip(sums, group.all_reduce(torch.stack(list(sums.values()))), strict=True))
    return {
        k: float(v) / n
        for k, v in sums.items()
        if attack is not None or not k.startswith("robust_")
    }


def global_grad_norm(model: nn.Module) -> torch.Tensor:
    """Return ``sqrt(Σ_p ‖∇_p L‖²)`` over all parameters with a gradient (SPEC E4)."""
    params = list(model.parameters())
    norms = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    if not norms:  # on the parameters' device: stacked with the other steps' norms
        return torch.zeros((), device=params[0].device if params else None)
    return torch.linalg.vector_norm(torch.stack(norms))


# ----------------------------------------------------------------------------- the loop
@dataclass
class InitialState:
    """What a (single- or multi-process) training run starts from, fresh or resumed."""

    data: Any
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Any
    generators: dict[str, torch.Generator]
    bank: TEBank | None
    best: dict[str, Any]
    start_epoch: int
    global_step: int


def initial_state(
    config: TrainConfig,
    device: torch.device,
    paths: runs.RunPaths,
    *,
    resume: bool,
    write_files: bool = True,
) -> InitialState:
    """Seed, load the data, build model/optimizer/schedule/RNGs/TE bank, restore ``last.pt``.

    The order of random draws is fixed here, so every launcher (``train`` and the DDP entry
    point) starts from the same state. With ``write_files`` (rank 0 only under DDP), metric
    rows after the checkpoint are dropped and the labels file is written atomically.
    """
    random.seed(config.seed)
    np.random.seed(config.seed % 2**32)  # noqa: NPY002 - seeds third-party users of the global RNG
    torch.manual_seed(config.seed)
    data = prepare_data(config)
    model = build_run_model(config, data).to(device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(config, model)
    schedule = schedule_from_config(config)
    gen_device = device if device.type == "cuda" else torch.device("cpu")
    generators = {
        "shuffle": torch.Generator().manual_seed(config.seed + _SHUFFLE_SEED_OFFSET),
        "augment": torch.Generator(device=gen_device).manual_seed(
            config.seed + _AUGMENT_SEED_OFFSET
        ),
    }
    bank = None
    if METHODS[config.method].te:
        bank = TEBank(len(data.train_y), data.num_classes, config.te_alpha, device=device)
    best: dict[str, Any] = {}
    start_epoch, global_step = 1, 0
    run_dir = paths.root
    if resume and paths.last.exists():
        ckpt = load_checkpoint(paths.last, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if bank is not None:
            bank.bank.copy_(ckpt["te_bank"].to(device))
        if not torch.equal(ckpt["train_labels"].cpu(), data.train_y.cpu()):
            raise ValueError(
                f"run_dir={str(run_dir)!r}: the stored training labels differ from the ones "
                "this config produces (data or label-noise code changed); start a new run"
            )
        restore_rng_state(ckpt["rng"], generators)
        start_epoch, global_step = int(ckpt["epoch"]) + 1, int(ckpt["global_step"])
        best = dict(ckpt.get("best") or {})
        logger.info("resuming %s at epoch %d", run_dir, start_epoch)
    elif resume:
        logger.info("resume requested but %s has no checkpoint: starting fresh", run_dir)
    if write_files:
        # Rows of epochs after the checkpoint (a kill between writing rows and the checkpoint)
        # are dropped so that the files agree with the state we continue from.
        runs.rewrite_jsonl(paths.metrics, lambda r: r.get("epoch", 0) < start_epoch)
        runs.rewrite_jsonl(paths.steps, lambda r: r.get("epoch", 0) < start_epoch)
        labels = {
            "train_labels": data.train_y.cpu(),
            "original_labels": data.train_y_original.cpu(),
            "flipped": data.flipped.cpu(),
        }
        buffer = io.BytesIO()
        torch.save(labels, buffer)
        atomic_write_bytes(paths.labels, buffer.getvalue())
    return InitialState(
        data, model, optimizer, schedule, generators, bank, best, start_epoch, global_step
    )


def apply_callbacks(
    callbacks: Sequence[Callback], ctx: EpochContext, model: nn.Module, row: dict[str, Any]
) -> None:
    """Add each callback's metrics to ``row`` (the model's train/eval mode is restored).

    Raises ValueError when a callback returns a metric name ``row`` already has.
    """
    for cb in callbacks:
        was_training = model.training
        added = cb(ctx) or {}
        model.train(was_training)
        clash = set(added) & set(row)
        if clash:
            raise ValueError(f"callback {cb!r} returned metric names already used: {clash}")
        row.update(added)


def select_best(
    config: TrainConfig, row: dict[str, Any], epoch: int, best: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Return the best-epoch record after ``row`` and whether ``epoch`` is the new best.

    The record names ``config.select_metric``, its value, the epoch and the split it was
    selected on (test / validation / train). An evaluated epoch whose row lacks the metric
    raises ValueError listing the available ones.
    """
    if config.select_metric is None:
        return best, False
    value = row.get(config.select_metric)
    if value is None:
        if epoch % config.eval_every == 0:
            raise ValueError(
                f"select_metric={config.select_metric!r} is not a metric of this run; "
                f"available: {sorted(row)}"
            )
        return best, False
    better = (
        not best
        or (config.select_mode == "max" and value > best["value"])
        or (config.select_mode == "min" and value < best["value"])
    )
    if not better:
        return best, False
    split = config.select_metric.split("_", 1)[0]
    return {
        "metric": config.select_metric,
        "value": value,
        "epoch": epoch,
        "selected_on": {"test": "test", "val": "validation"}.get(split, "train"),
    }, True


class Group:
    """The processes a run trains on; this one is a single process (every method a no-op).

    :class:`robmem.empirics.distributed.TorchGroup` is the data-parallel one: ``shard(n)`` gives
    this rank's rows ``(lo, hi)`` of a batch of ``n``, ``all_reduce`` sums a tensor in place,
    ``broadcast`` returns rank 0's object, ``wrap`` gives the module the training step
    calls, ``sync_rng`` gives every rank rank 0's RNG state and ``sync_bank`` shares the TE
    bank rows each rank updated.
    """

    rank, world, device = 0, 1, None

    def shard(self, n: int) -> tuple[int, int]:
        return 0, n

    def all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        return t

    def broadcast(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        pass

    def wrap(self, model: nn.Module, step_model: nn.Module) -> nn.Module:
        return step_model

    def sync_rng(self) -> None:
        pass

    def sync_bank(self, bank: TEBank, idx: torch.Tensor, before: torch.Tensor) -> None:
        pass


def train(
    config: TrainConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
    group: Group | None = None,
    shard_eval: bool = False,
) -> runs.RunResult:
    """Train ``config`` in ``run_dir`` and return the :class:`~robmem.empirics.runs.RunResult`.

    Parameters
    ----------
    config : TrainConfig
    run_dir : path
        A new (or empty) folder; with ``resume=True`` the folder of an earlier run of the same
        config, continued from its ``checkpoints/last.pt`` (or from scratch if it has none).
    resume : bool
        Continue an existing run. On CPU the continued run's metrics equal an uninterrupted
        run's bit for bit (except the ``time_*`` fields).
    progress : bool
        Show tqdm bars (stderr, rank 0) with live clean/robust accuracy.
    callbacks : sequence of callables
        ``cb(EpochContext) -> dict`` of extra metrics, called once per epoch after
        evaluation (rank 0); see :class:`EpochContext`.
    group : Group, optional
        The processes of a data-parallel run (:mod:`robmem.empirics.distributed`); ``batch_size`` is
        then the global batch, each rank trains on its shard, rank 0 writes the files.
    shard_eval : bool
        Data-parallel only: every rank evaluates its rows of each evaluation batch (the
        metrics equal rank 0 evaluating everything, which is the default).

    Raises
    ------
    FileExistsError
        ``run_dir`` is not empty and ``resume`` is False.
    ValueError
        Bad config, or resume with a config that differs from the stored one.
    NonFiniteLossError
        The loss became NaN/inf; ``checkpoints/last.pt`` keeps the last good epoch.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    group = group or Group()
    lead = group.rank == 0
    run_dir = pathlib.Path(run_dir)
    paths, failure = runs.RunPaths(run_dir), None
    if lead:
        try:
            if resume and (run_dir / runs.CONFIG_JSON).exists():
                paths = runs.open_run_dir_for_resume(run_dir, config)
            else:
                paths = runs.create_run_dir(run_dir, config, resume=resume)
        except (ValueError, FileExistsError, FileNotFoundError) as exc:
            failure = exc
    _raise_on_all_ranks(group, failure)

    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    device = group.device or resolve_device(config.device)
    state = initial_state(config, device, paths, resume=resume, write_files=lead)
    data, model, optimizer, schedule = state.data, state.model, state.optimizer, state.schedule
    generators, bank, best = state.generators, state.bank, state.best
    start_epoch, global_step = state.start_epoch, state.global_step
    if start_epoch > 1 and device.type == "cuda":
        # Each rank restored its GPU's entry of rank 0's checkpoint; an uninterrupted run gave
        # every rank rank 0's state at the end of each epoch (below); so does this.
        group.sync_rng()

    # The data on the device, and the fixed subset evaluated on train (data seed).
    train_x = _to_memory_format(data.train_x.to(device), config)
    train_y, train_y_orig = data.train_y.to(device), data.train_y_original.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    val = None if data.val_x is None else (data.val_x.to(device), data.val_y.to(device))
    eval_train_idx = None
    if config.eval_train_size is not None and config.eval_train_size < len(train_y):
        gen = torch.Generator().manual_seed(config.data_seed)
        eval_train_idx = torch.randperm(len(train_y), generator=gen)[: config.eval_train_size]
        eval_train_idx = eval_train_idx.to(device)

    step_model = group.wrap(model, compiled_step_model(model, config))
    attack = METHODS[config.method].build_attack(config)
    eval_attack = build_eval_attack(config)
    n_train = len(train_y)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    autocast = _autocast(config, device)
    progress = progress and lead

    epoch_bar = None
    if progress:
        from tqdm.auto import tqdm

        epoch_bar = tqdm(
            total=config.epochs, initial=start_epoch - 1, desc="epochs", unit="ep", leave=True
        )

    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n_train, generator=generators["shuffle"]).to(device)
        losses, sizes, gnorms, step_rows = [], [], [], []
        n_seen, correct_clean, correct_rob = 0, 0.0, 0.0
        have_clean = have_rob = False
        batch_bar = None
        if progress:
            batch_bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}", leave=False)
        model.train()
        for i in range(steps_per_epoch):
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            # The whole global batch is augmented on every rank (same generator draws).
            xb, yb = training_batch(train_x, train_y, idx, config, generators["augment"])
            lr = schedule.lr_at(global_step, steps_per_epoch)
            n = len(idx)
            lo, hi = group.shard(n)
            rows = None if group.world == 1 else (lo, hi, n)
            before = None if bank is None or rows is None else bank.bank[idx].clone()
            out, gnorm, totals = training_step(
                config, step_model, model, optimizer, xb[lo:hi], yb[lo:hi], idx[lo:hi], epoch,
                bank, autocast, lr, attack=attack, rows=rows, group=group,
            )  # fmt: skip
            if before is not None:
                group.sync_bank(bank, idx, before)
            loss = (totals[0] / n).float()
            if gnorm is None:
                if lead:
                    runs.set_status(
                        paths, "failed", reason=f"non-finite loss at epoch {epoch}, step {i}"
                    )
                for bar in (batch_bar, epoch_bar):
                    if bar is not None:
                        bar.close()
                raise NonFiniteLossError(
                    f"training loss is {float(loss)} at epoch {epoch}, step {i} "
                    f"(global step {global_step}); run stopped. Last good checkpoint: "
                    + (f"{paths.last} (epoch {epoch - 1}). " if epoch > 1 else "none yet. ")
                    + "Lower lr, or check the data and attack settings."
                )
            losses.append(loss)
            sizes.append(n)
            gnorms.append(gnorm)
            n_seen += n
            if out.correct_clean is not None:
                correct_clean += totals[1]
                have_clean = True
            if out.correct_robust is not None:
                correct_rob += totals[2]
                have_rob = True
            step_rows.append((epoch, global_step, lr))
            global_step += 1
            if batch_bar is not None:
                batch_bar.update(1)
                if (i + 1) % _PROGRESS_EVERY == 0 or i + 1 == steps_per_epoch:
                    post = {"loss": f"{float(losses[-1]):.3f}"}
                    if have_clean:
                        post["clean"] = f"{float(correct_clean) / n_seen:.3f}"
                    if have_rob:
                        post["robust"] = f"{float(correct_rob) / n_seen:.3f}"
                    batch_bar.set_postfix(post)
        if batch_bar is not None:
            batch_bar.close()
        loss_values = torch.stack(losses).float().cpu()
        gnorm_values = torch.stack(gnorms).cpu()
        train_time = time.perf_counter() - t0

        row: dict[str, Any] = {
            "epoch": epoch,
            "global_step": global_step,
            "lr": step_rows[-1][2],
            "te_weight": te_weight(epoch, config),
            "train_objective": float((loss_values * torch.tensor(sizes)).sum()) / n_seen,
            "train_batch_clean_acc": float(correct_clean) / n_seen if have_clean else None,
            "train_batch_robust_acc": float(correct_rob) / n_seen if have_rob else None,
            "grad_norm_mean": float(gnorm_values.mean()),
            "grad_norm_max": float(gnorm_values.max()),
            "grad_norm_sq_mean": float((gnorm_values**2).mean()),
        }
        t1 = time.perf_counter()
        eval_due = epoch % config.eval_every == 0 or epoch == config.epochs
        if eval_due and (lead or shard_eval):
            ex, ey, ey_orig = train_x, train_y, train_y_orig
            if eval_train_idx is not None:
                ex, ey, ey_orig = ex[eval_train_idx], ey[eval_train_idx], ey_orig[eval_train_idx]
            extra = {"original": ey_orig} if config.label_noise > 0 else None
            row["train_eval_n"] = len(ey)  # the full training set unless eval_train_size
            for prefix, (xs, ys, ye) in {
                "train": (ex, ey, extra),
                "test": (test_x, test_y, None),
                **({"val": (val[0], val[1], None)} if val is not None else {}),
            }.items():
                res = evaluate(
                    model, xs, ys, eval_attack, batch_size=config.eval_batch_size,
                    config=config, y_extra=ye, group=group if shard_eval else None,
                )  # fmt: skip
                row.update({f"{prefix}_{k}": v for k, v in res.items()})
            if "train_robust_acc" in row and "test_robust_acc" in row:
                row["robust_gap"] = row["train_robust_acc"] - row["test_robust_acc"]
                row["clean_gap"] = row["train_clean_acc"] - row["test_clean_acc"]
        row["time_train_s"] = train_time
        row["time_eval_s"] = time.perf_counter() - t1

        steps = [
            {"epoch": e, "step": st, "lr": lr_, "loss": float(lv), "grad_norm": float(g)}
            for (e, st, lr_), lv, g in zip(step_rows, loss_values, gnorm_values, strict=True)
        ]
        failure = None
        try:  # rank 0: callbacks, best selection, rows and checkpoints written
            if lead:
                ctx = EpochContext(
                    epoch=epoch, config=config, model=model, device=device, train_x=train_x,
                    train_y=train_y, train_y_original=train_y_orig, test_x=test_x,
                    test_y=test_y, metrics=dict(row), run_dir=paths.root,
                    eval_attack=eval_attack, te_bank=bank,
                )  # fmt: skip
                apply_callbacks(callbacks, ctx, model, row)
                best, is_new_best = select_best(config, row, epoch, best)
                row["is_best"] = bool(best) and best.get("epoch") == epoch
                runs.append_jsonl(paths.steps, steps)
                runs.append_jsonl(paths.metrics, [row])
                payload = {
                    "format": CHECKPOINT_FORMAT,
                    "config": config.to_json(),
                    "epoch": epoch,
                    "global_step": global_step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": {**schedule.state_dict(), "global_step": global_step},
                    "rng": rng_state(generators),
                    "te_bank": None if bank is None else bank.bank.detach().cpu(),
                    "train_labels": data.train_y.detach().cpu(),
                    "flipped": data.flipped.detach().cpu(),
                    "best": dict(best),
                }
                if is_new_best:
                    save_checkpoint(paths.best(config), payload)
                save_checkpoint(paths.last, payload)
                logger.info("epoch %d: %s", epoch, row)
        except ValueError as exc:
            failure = exc
        _raise_on_all_ranks(group, failure)
        best = group.broadcast(best)
        group.sync_rng()
        group.barrier()
        if epoch_bar is not None:
            epoch_bar.update(1)
            epoch_bar.set_postfix(_bar_summary(row))
    if epoch_bar is not None:
        epoch_bar.close()
    if lead:
        runs.set_status(paths, "completed", epochs=config.epochs)
    group.barrier()
    return runs.RunResult(
        run_dir=paths.root,
        config=config,
        metrics=runs.load_metrics(paths.root),
        metrics_path=paths.metrics,
        steps_path=paths.steps,
        last_checkpoint=paths.last,
        best_checkpoint=paths.best(config) if best else None,
        best=best,
    )


def _raise_on_all_ranks(group: Group, failure: Exception | None) -> None:
    """Raise rank 0's ``failure`` on every rank (a raise on rank 0 alone would deadlock)."""
    message = group.broadcast(None if failure is None else (type(failure).__name__, str(failure)))
    if failure is not None:
        raise failure
    if message is not None:
        kind = {"FileExistsError": FileExistsError, "FileNotFoundError": FileNotFoundError}
        raise kind.get(message[0], ValueError)(message[1])


def _bar_summary(row: dict[str, Any]) -> dict[str, str]:
    keys = {
        "train_clean_acc": "tr_cl",
        "train_robust_acc": "tr_rob",
        "test_clean_acc": "te_cl",
        "test_robust_acc": "te_rob",
    }
    return {short: f"{row[k]:.3f}" for k, short in keys.items() if row.get(k) is not None}


def load_model_from_run(
    run_dir: str | pathlib.Path, which: str = "last", *, device: str = "cpu"
) -> tuple[nn.Module, TrainConfig, dict[str, Any]]:
    """Return ``(model, config, checkpoint)`` of a run's ``last`` or ``best`` checkpoint."""
    paths = runs.RunPaths(pathlib.Path(run_dir))
    config = TrainConfig.from_json(paths.config_json.read_text())
    if which == "last":
        path = paths.last
    elif which == "best":
        path = paths.best(config)
    else:
        raise ValueError(f"which must be 'last' or 'best', got {which!r}")
    if not path.exists():
        raise FileNotFoundError(f"run_dir={str(run_dir)!r} has no {path.name}")
    ckpt = load_checkpoint(path, map_location=device)
    model = build_run_model(config, prepare_data(config))
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), config, ckpt
