"""Data-parallel adversarial training with ``torch.distributed`` (DDP, launched by torchrun).

Each process holds a full model replica wrapped in
:class:`torch.nn.parallel.DistributedDataParallel`; every optimisation step splits the *global*
batch (``config.batch_size`` examples, the same batch a single-process run would draw) into
``world_size`` contiguous shards. Adversarial examples are crafted on the **unwrapped** module
(attacks run with every parameter's ``requires_grad`` off, so they never enter DDP's reducer
and trigger no gradient all-reduce — torchattacks' forced ``.to(device)`` and AutoAttack's
unbalanced ``DataParallel`` are the failure modes this avoids); only the training loss goes
through the DDP wrapper, whose backward averages the gradients across processes.

Equality with a single-process run (what the tests check on CPU with gloo and 2 processes):

- every rank draws the same shuffling permutation and augments the full global batch with the
  same generator, then keeps its shard;
- the local loss (a batch mean) is scaled by ``local_n · world_size / global_n`` so that DDP's
  gradient *average* equals the gradient of the global-batch mean, also for a ragged last batch;
- the attacks' random starts come from the global torch RNG. On CPU a draw of ``n`` numbers
  equals the concatenation of draws of ``a`` and ``n − a`` numbers, so each rank first draws
  (and discards) as many numbers as the shards before it use, crafts its own shard, then draws
  the numbers of the shards after it: the random start of every example is the one the
  single-process run gives it, and all ranks end the step with the same RNG state. This holds
  exactly for ℓ∞ PGD / FGSM-RS (uniform starts) and for TRADES' Gaussian start when the
  per-example size is a multiple of 16 (torch's CPU ``normal_`` fills 16 at a time); it does not
  hold for ℓ2 starts or on CUDA (Philox offsets), where each rank's noise is still a valid,
  independent-per-example start but not the single-process one;
- evaluation and epoch callbacks run on rank 0 (on the unwrapped module, exactly as
  :func:`empirics.trainers.train` does), then rank 0's RNG state is broadcast. With
  ``shard_eval=True`` (``--shard-eval``) every rank evaluates a shard instead (faster; the
  evaluation attack's random starts then differ from a single-process run).

BatchNorm in train mode normalises with per-shard statistics (as in any DDP run without
SyncBatchNorm), so models with BatchNorm are data-parallel but not bit-equal to one process.

Launch (one process per GPU, or per CPU slot with gloo)::

    torchrun --standalone --nproc_per_node 4 -m empirics.distributed \\
        --config run.toml --run-dir runs/ddp
    torchrun --standalone --nproc_per_node 4 -m empirics.distributed --run-dir runs/ddp --resume

Run directories, metrics and checkpoints are those of :mod:`empirics.runs` (written by rank 0
only), so a data-parallel run can be resumed by a single process and vice versa.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from empirics import runs
from empirics.checkpoint import save_checkpoint
from empirics.config import TrainConfig
from empirics.trainers import (
    Callback,
    EpochContext,
    NonFiniteLossError,
    TEBank,
    _state_payload,
    apply_callbacks,
    build_eval_attack,
    device_tensors,
    evaluate,
    global_grad_norm,
    initial_state,
    method_step,
    select_best,
    te_weight,
    training_batch,
)

logger = logging.getLogger(__name__)

#: Methods whose training-attack random start is a single uniform draw per input number.
_UNIFORM_START_METHODS = frozenset({"pgd", "pgd-te", "fgsm-rs"})
#: Methods whose training attack draws a Gaussian start (TRADES).
_GAUSSIAN_START_METHODS = frozenset({"trades", "trades-te"})
#: torch's CPU ``normal_`` fills blocks of this many numbers (aten ``normal_fill``); a
#: skip-ahead of a multiple of it keeps the Gaussian stream aligned.
_NORMAL_FILL_BLOCK = 16


class _AttackAwareDDP(nn.Module):
    """Route a forward through DDP only when it builds weight gradients.

    Attacks switch every parameter's ``requires_grad`` off (:func:`empirics.attacks.attack_mode`)
    and evaluation runs under ``no_grad``: those forwards go to the unwrapped module, so they
    never touch DDP's reducer or broadcast buffers. The training-loss forward goes through DDP.
    """

    def __init__(self, ddp: nn.parallel.DistributedDataParallel) -> None:
        super().__init__()
        self.ddp = ddp

    @property
    def unwrapped(self) -> nn.Module:
        return self.ddp.module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        builds_weight_grads = torch.is_grad_enabled() and any(
            p.requires_grad for p in self.ddp.module.parameters()
        )
        if builds_weight_grads:
            return self.ddp(x)
        return self.ddp.module(x)


def shard_bounds(global_n: int, world_size: int) -> list[tuple[int, int]]:
    """Return the ``[start, stop)`` of each rank's contiguous shard of a batch of ``global_n``.

    Sizes differ by at most one (the first ``global_n % world_size`` ranks get one more), as
    :func:`torch.tensor_split`.
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if global_n < 0:
        raise ValueError(f"global_n must be >= 0, got {global_n}")
    base, extra = divmod(global_n, world_size)
    bounds, start = [], 0
    for r in range(world_size):
        stop = start + base + (1 if r < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def _skip_rng(numbers: int, like: torch.Tensor) -> None:
    """Advance the global RNG of ``like``'s device by ``numbers`` draws of its dtype."""
    if numbers > 0:
        torch.empty(numbers, dtype=like.dtype, device=like.device).uniform_()


def _start_numbers_per_example(config: TrainConfig, example: torch.Tensor) -> int:
    """Random numbers the training attack draws per example (0 when it draws none)."""
    if config.method in _UNIFORM_START_METHODS:
        if config.norm != "inf":
            logger.warning("ℓ2 random starts are not sharded exactly; ranks draw their own")
        return example.numel()
    if config.method in _GAUSSIAN_START_METHODS:
        if example.numel() % _NORMAL_FILL_BLOCK:
            logger.warning(
                "TRADES start of %d numbers per example is not a multiple of %d: not aligned",
                example.numel(),
                _NORMAL_FILL_BLOCK,
            )
        return example.numel()
    return 0


def _init_process_group(backend: str | None, device_type: str) -> tuple[int, int, bool]:
    """Initialise the default process group from torchrun's env vars if needed.

    Returns ``(rank, world_size, created)``.
    """
    import torch.distributed as dist

    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise ValueError(
            "torch.distributed is not initialised and RANK/WORLD_SIZE are unset; launch with "
            "`torchrun --nproc_per_node N -m empirics.distributed ...`"
        )
    if backend is None:
        backend = "nccl" if device_type == "cuda" else "gloo"
    if backend not in ("gloo", "nccl", "mpi"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or 'mpi', got {backend!r}")
    dist.init_process_group(backend=backend)
    return dist.get_rank(), dist.get_world_size(), True


def _local_device(config: TrainConfig) -> torch.device:
    if config.device == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        if config.device == "auto":
            return torch.device("cpu")
        raise ValueError(f"device={config.device!r} requested but CUDA is not available")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return torch.device("cuda", local_rank)


def _broadcast_object(obj: Any, src: int, device: torch.device) -> Any:
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src, device=device if device.type == "cuda" else None)
    return box[0]


def _barrier(device: torch.device) -> None:
    """``dist.barrier`` on this rank's GPU under NCCL (``device_ids`` is NCCL-only)."""
    import torch.distributed as dist

    if device.type == "cuda" and dist.get_backend() == "nccl":
        dist.barrier(device_ids=[device.index])
    else:
        dist.barrier()


def _sync_rng_from_rank0(device: torch.device) -> None:
    """Give every rank rank 0's global torch RNG state(s)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    states = _broadcast_object(states, 0, device)
    torch.set_rng_state(states["cpu"])
    if "cuda" in states:
        torch.cuda.set_rng_state(states["cuda"], device)


def train_distributed(
    config: TrainConfig,
    run_dir: str | pathlib.Path,
    *,
    resume: bool = False,
    callbacks: Sequence[Callback] = (),
    backend: str | None = None,
    shard_eval: bool = False,
) -> runs.RunResult:
    """Train ``config`` data-parallel across the processes of a torchrun launch.

    Parameters
    ----------
    config : TrainConfig
        ``batch_size`` is the **global** batch (split across processes).
    run_dir : path
        As in :func:`empirics.trainers.train` (written by rank 0 only).
    resume : bool
        Continue from ``checkpoints/last.pt`` (all ranks load it).
    callbacks : sequence of callables
        Epoch callbacks, run on rank 0 only.
    backend : {"gloo", "nccl", "mpi"}, optional
        Used when the process group is not initialised yet; default nccl on CUDA, gloo on CPU.
    shard_eval : bool
        Split the per-epoch evaluation across the processes (each evaluates a contiguous
        shard with its own seeded attack RNG; sums are all-reduced). Clean metrics and
        training are unchanged (the global RNG is advanced as a single-process evaluation
        would advance it); robust metrics then differ from a single-process run only
        through the evaluation attack's random starts. Default: rank 0 evaluates everything,
        exactly as :func:`empirics.trainers.train`.

    Returns
    -------
    RunResult
        On every rank (metrics read back from the run directory).

    Raises
    ------
    ValueError
        Not launched under torchrun, bad config, or a resume with a different config.
    NonFiniteLossError
        On every rank, when the global loss becomes NaN/inf.
    """
    import torch.distributed as dist

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    run_dir = pathlib.Path(run_dir)
    device = _local_device(config)
    if device.type == "cuda":
        # Before the process group: NCCL binds each rank's communicator to the current device.
        torch.cuda.set_device(device)
    rank, world, created = _init_process_group(backend, device.type)
    try:
        return _train(config, run_dir, resume, callbacks, rank, world, device, shard_eval)
    finally:
        if created:
            dist.destroy_process_group()


def _train(
    config: TrainConfig,
    run_dir: pathlib.Path,
    resume: bool,
    callbacks: Sequence[Callback],
    rank: int,
    world: int,
    device: torch.device,
    shard_eval: bool = False,
) -> runs.RunResult:
    import torch.distributed as dist

    # Rank 0 creates (or checks) the run directory; every rank raises the same error.
    error = None
    if rank == 0:
        try:
            if resume and (run_dir / runs.CONFIG_JSON).exists():
                runs.open_run_dir_for_resume(run_dir, config)
            else:
                runs.create_run_dir(run_dir, config)
        except (ValueError, FileExistsError, FileNotFoundError) as exc:
            error = (type(exc).__name__, str(exc))
    error = _broadcast_object(error, 0, device)
    if error is not None:
        kind = {"FileExistsError": FileExistsError, "FileNotFoundError": FileNotFoundError}
        raise kind.get(error[0], ValueError)(error[1])
    paths = runs.RunPaths(run_dir)

    if config.num_threads is not None:
        torch.set_num_threads(config.num_threads)
    if config.compile:
        logger.warning("compile=True is ignored by data-parallel training (eager DDP)")
    state = initial_state(config, device, paths, resume=resume, write_files=rank == 0)
    data, module, optimizer, schedule = state.data, state.model, state.optimizer, state.schedule
    generators, bank, best = state.generators, state.bank, state.best
    start_epoch, global_step = state.start_epoch, state.global_step
    if start_epoch > 1 and device.type == "cuda":
        # The checkpoint holds rank 0's process's per-GPU states: rank r restored GPU r's entry,
        # which rank 0 never drew from. An uninterrupted run gave every rank rank 0's state at
        # the end of the epoch (below); so does this.
        _sync_rng_from_rank0(device)

    ddp = nn.parallel.DistributedDataParallel(
        module, device_ids=[device.index] if device.type == "cuda" else None
    )
    model = _AttackAwareDDP(ddp)
    t = device_tensors(data, config, device)
    train_x, train_y, train_y_orig = t.train_x, t.train_y, t.train_y_orig
    test_x, test_y, val, eval_train_idx = t.test_x, t.test_y, t.val, t.eval_train_idx
    eval_attack = build_eval_attack(config)
    n_train = len(train_y)
    steps_per_epoch = math.ceil(n_train / config.batch_size)
    per_example = _start_numbers_per_example(config, train_x[0])
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if config.precision == "bf16"
        else torch.autocast(device.type, enabled=False)
    )

    for epoch in range(start_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(n_train, generator=generators["shuffle"]).to(device)
        # Per step: [loss·n, correct_clean, correct_robust, non-finite flag], summed over ranks.
        stats, gnorms, lrs, step_rows = [], [], [], []
        have_clean = have_rob = False
        module.train()
        for i in range(steps_per_epoch):
            idx = perm[i * config.batch_size : (i + 1) * config.batch_size]
            # the single-process batch (augmentation per data set, memory format) on every rank
            xb, _ = training_batch(train_x, train_y, idx, config, generators["augment"])
            global_n = len(idx)
            lo, hi = shard_bounds(global_n, world)[rank]
            xl, yl, il = xb[lo:hi], train_y[idx][lo:hi], idx[lo:hi]
            lr = schedule.lr_at(global_step, steps_per_epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad(set_to_none=True)
            _skip_rng(lo * per_example, xb)
            if bank is not None:
                before = bank.bank[idx].clone()
            with autocast:
                out = method_step(config, model, xl, yl, il, epoch, bank)
            _skip_rng((global_n - hi) * per_example, xb)
            if bank is not None:
                _sync_bank_rows(bank, idx, before, lo, hi)
            local_n = hi - lo
            loss = out.loss * (local_n * world / global_n)
            row = _step_stats(out.loss, out.correct_clean, out.correct_robust, local_n)
            dist.all_reduce(row)
            have_clean = have_clean or out.correct_clean is not None
            have_rob = have_rob or out.correct_robust is not None
            if row[3] > 0:
                if rank == 0:
                    runs.set_status(
                        paths, "failed", reason=f"non-finite loss at epoch {epoch}, step {i}"
                    )
                raise NonFiniteLossError(
                    f"training loss is not finite at epoch {epoch}, step {i} (global step "
                    f"{global_step}); run stopped. Last good checkpoint: "
                    + (f"{paths.last} (epoch {epoch - 1})." if epoch > 1 else "none yet.")
                )
            loss.backward()
            gnorm = global_grad_norm(module)
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
            optimizer.step()
            stats.append(torch.cat([row[:3], row.new_full((1,), global_n)]))
            gnorms.append(gnorm)
            lrs.append(lr)
            step_rows.append((epoch, global_step, lr))
            global_step += 1
        train_time = time.perf_counter() - t0
        table32 = torch.stack(stats).cpu()  # float32, summed as trainers.train sums
        table = table32.double()
        n_seen = float(table[:, 3].sum())
        gnorm_values = torch.stack(gnorms).cpu()
        t1 = time.perf_counter()
        eval_row: dict[str, Any] = {}
        eval_due = epoch % config.eval_every == 0 or epoch == config.epochs
        if eval_due and (shard_eval or rank == 0):
            ex, ey, ey_orig = train_x, train_y, train_y_orig
            if eval_train_idx is not None:
                ex, ey = ex[eval_train_idx], ey[eval_train_idx]
                ey_orig = ey_orig[eval_train_idx]
            eval_row["train_eval_n"] = len(ey)  # as trainers.train
            extra = {"original": ey_orig} if config.label_noise > 0 else None
            sets = {"train": (ex, ey, extra), "test": (test_x, test_y, None)}
            if val is not None:
                sets["val"] = (val[0], val[1], None)
            for prefix, (xs, ys, ye) in sets.items():
                if shard_eval:
                    res = _sharded_evaluate(
                        module, xs, ys, eval_attack, config, ye, rank, world, device, epoch
                    )
                else:
                    res = evaluate(
                        module,
                        xs,
                        ys,
                        eval_attack,
                        batch_size=config.eval_batch_size,
                        config=config,
                        y_extra=ye,
                    )
                eval_row.update({f"{prefix}_{k}": v for k, v in res.items()})
            if "train_robust_acc" in eval_row and "test_robust_acc" in eval_row:
                eval_row["robust_gap"] = eval_row["train_robust_acc"] - eval_row["test_robust_acc"]
                eval_row["clean_gap"] = eval_row["train_clean_acc"] - eval_row["test_clean_acc"]
        eval_time = time.perf_counter() - t1
        if rank == 0:
            row_out = _epoch_row(config, epoch, global_step, lrs, table32, n_seen, gnorm_values)
            row_out["train_batch_clean_acc"] = (
                float(table[:, 1].sum()) / n_seen if have_clean else None
            )
            row_out["train_batch_robust_acc"] = (
                float(table[:, 2].sum()) / n_seen if have_rob else None
            )
            row_out.update(eval_row)
            row_out["time_train_s"] = train_time
            row_out["time_eval_s"] = eval_time
            ctx = EpochContext(
                epoch=epoch,
                config=config,
                model=module,
                device=device,
                train_x=train_x,
                train_y=train_y,
                train_y_original=train_y_orig,
                test_x=test_x,
                test_y=test_y,
                metrics=dict(row_out),
                run_dir=paths.root,
                eval_attack=eval_attack,
                te_bank=bank,
            )
            apply_callbacks(callbacks, ctx, module, row_out)
            # No raise for a missing metric here: rank 0 raising alone would leave the other
            # ranks waiting in the next collective.
            best, is_new_best = select_best(config, row_out, epoch, best, require_metric=False)
            best_path = paths.best(config) if is_new_best else None
            row_out["is_best"] = bool(best) and best.get("epoch") == epoch
            runs.append_jsonl(
                paths.steps,
                [
                    {"epoch": e, "step": st, "lr": lr_, "loss": float(s[0] / s[3]), "grad_norm": g}
                    for (e, st, lr_), s, g in zip(
                        step_rows, table, gnorm_values.tolist(), strict=True
                    )
                ],
            )
            runs.append_jsonl(paths.metrics, [row_out])
            payload = _state_payload(
                config=config,
                epoch=epoch,
                global_step=global_step,
                model=module,
                optimizer=optimizer,
                schedule=schedule,
                generators=generators,
                bank=bank,
                data=data,
                best=best,
            )
            if best_path is not None:
                save_checkpoint(best_path, payload)
            save_checkpoint(paths.last, payload)
        best = _broadcast_object(best, 0, device)
        _sync_rng_from_rank0(device)
        _barrier(device)
    if rank == 0:
        runs.set_status(paths, "completed", epochs=config.epochs)
    _barrier(device)
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


def _step_stats(
    loss: torch.Tensor,
    correct_clean: torch.Tensor | None,
    correct_robust: torch.Tensor | None,
    local_n: int,
) -> torch.Tensor:
    """``[loss·n, correct_clean, correct_robust, non-finite flag]`` (float32) on the loss's
    device, built without host-to-device copies (they would synchronise every step)."""
    loss = loss.detach().float()
    zero = loss.new_zeros(())

    def count(value: torch.Tensor | float | None) -> torch.Tensor:
        if value is None:
            return zero
        if isinstance(value, torch.Tensor):
            return value.detach().float()
        return zero + float(value)

    return torch.stack(
        [
            loss * local_n,
            count(correct_clean),
            count(correct_robust),
            (~torch.isfinite(loss)).float(),
        ]
    )


def _sharded_evaluate(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attack: Any,
    config: TrainConfig,
    y_extra: dict[str, torch.Tensor] | None,
    rank: int,
    world: int,
    device: torch.device,
    epoch: int,
) -> dict[str, float]:
    """:func:`empirics.trainers.evaluate` on this rank's shard of ``(x, y)``, summed over ranks.

    The attack draws from an RNG seeded by (seed, epoch, rank) inside ``fork_rng``; then every
    rank advances the global RNG as a single-process evaluation would
    (:func:`_replay_eval_draws`), so training stays identical to a single-process run.
    """
    import numpy as np
    import torch.distributed as dist

    lo, hi = shard_bounds(len(y), world)[rank]
    keys = ["clean_acc", "clean_loss"]
    if attack is not None:
        keys += ["robust_acc", "robust_loss"]
    keys += [f"clean_acc_{k}" for k in (y_extra or {})]
    sums = torch.zeros(len(keys), dtype=torch.float64, device=device)
    if hi > lo:
        seed = int(np.random.SeedSequence([config.seed, epoch, rank]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            extra = {k: v[lo:hi] for k, v in y_extra.items()} if y_extra else None
            res = evaluate(
                module,
                x[lo:hi],
                y[lo:hi],
                attack,
                batch_size=config.eval_batch_size,
                config=config,
                y_extra=extra,
            )
        sums += torch.tensor([res[k] * (hi - lo) for k in keys], dtype=torch.float64).to(device)
    dist.all_reduce(sums)
    _replay_eval_draws(attack, x, config.eval_batch_size)
    return {k: float(v) / len(y) for k, v in zip(keys, sums.tolist(), strict=True)}


def _replay_eval_draws(attack: Any, x: torch.Tensor, batch_size: int) -> None:
    """Draw (and discard) the random starts a single-process evaluation of ``x`` would draw.

    :func:`empirics.trainers.evaluate` runs ``attack`` batch by batch on the global RNG, so
    the next epoch's training noise depends on it; replaying the same draws (same shapes, same
    calls as :func:`empirics.attacks._random_start`, restarts batched) keeps training
    identical to a single-process run when the evaluation itself is sharded.
    """
    if attack is None or not getattr(attack, "random_start", False) or attack.steps == 0:
        return
    shape = tuple(x.shape[1:])
    for start in range(0, len(x), batch_size):
        rows = attack.restarts * min(batch_size, len(x) - start)
        if attack.norm == "inf":
            torch.empty((rows, *shape), dtype=x.dtype, device=x.device).uniform_()
        else:
            torch.empty((rows, *shape), dtype=x.dtype, device=x.device).normal_()
            torch.empty((rows,) + (1,) * len(shape), dtype=x.dtype, device=x.device).uniform_()


def _epoch_row(
    config: TrainConfig,
    epoch: int,
    global_step: int,
    lrs: list[float],
    table: torch.Tensor,
    n_seen: float,
    gnorm_values: torch.Tensor,
) -> dict[str, Any]:
    """The training part of an epoch's metric row (same keys as :func:`trainers.train`)."""
    return {
        "epoch": epoch,
        "global_step": global_step,
        "lr": lrs[-1],
        "te_weight": te_weight(epoch, config),
        "train_objective": float(table[:, 0].sum()) / n_seen,
        "grad_norm_mean": float(gnorm_values.mean()),
        "grad_norm_max": float(gnorm_values.max()),
        "grad_norm_sq_mean": float((gnorm_values**2).mean()),
    }


def _sync_bank_rows(
    bank: TEBank, idx: torch.Tensor, before: torch.Tensor, lo: int, hi: int
) -> None:
    """Share the TE-bank rows each rank updated: every rank ends with the global batch's rows."""
    import torch.distributed as dist

    mine = torch.zeros_like(before)
    mine[lo:hi] = bank.bank[idx[lo:hi]]
    mask = torch.zeros(len(idx), 1, dtype=before.dtype, device=before.device)
    mask[lo:hi] = 1.0
    dist.all_reduce(mine)
    dist.all_reduce(mask)
    # Rows nobody updated (TE not active yet) keep their old value; others are exact copies
    # (a sum with zeros is exact).
    bank.bank[idx] = torch.where(mask > 0, mine, before)


def main(argv: Sequence[str] | None = None) -> int:
    """``torchrun ... -m empirics.distributed --config C --run-dir D [--resume]``."""
    parser = argparse.ArgumentParser(
        prog="python -m empirics.distributed",
        description="Data-parallel training (launch with torchrun; one process per device).",
    )
    parser.add_argument("--config", type=pathlib.Path, help="TrainConfig file (.toml or .json)")
    parser.add_argument("--run-dir", type=pathlib.Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue from last.pt")
    parser.add_argument("--backend", choices=["gloo", "nccl", "mpi"], default=None)
    parser.add_argument(
        "--shard-eval",
        action="store_true",
        help="split the per-epoch evaluation across processes (robust metrics then use "
        "per-rank attack seeds)",
    )
    args = parser.parse_args(argv)
    if args.config is None and not (args.resume and (args.run_dir / runs.CONFIG_JSON).exists()):
        parser.error("--config is required unless --resume finds the run's config.json")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s pid%(process)d: %(message)s")
    try:
        config = TrainConfig.load(args.config or args.run_dir / runs.CONFIG_JSON)
        train_distributed(
            config,
            args.run_dir,
            resume=args.resume,
            backend=args.backend,
            shard_eval=args.shard_eval,
        )
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 2
    except NonFiniteLossError as exc:
        logger.error("stopped: %s", exc)
        return 3
    return 0


def _exit_without_teardown(code: int) -> None:
    """Flush and leave with ``os._exit``.

    Everything the run writes (metrics, checkpoints, status) is on disk with fsync before
    :func:`main` returns. At interpreter teardown, gloo's static destructors can abort a rank
    ("terminate called without an active exception", SIGABRT) after a successful run, seen
    once in a clean-clone CI run; skipping teardown keeps the exit code honest.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    _exit_without_teardown(main())
