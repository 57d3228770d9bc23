"""Packing benchmark: several small AT runs on one device at once vs one after the other.

Claim measured (issue 6, "several small runs packed on one GPU for sweeps"): a sweep of
``--runs`` small PGD-AT runs (LeNet-5 by default, one seed each) finishes faster when
:func:`robmem.bridge.sweep.run_sweep` runs them as ``--runs`` concurrent worker processes sharing
the device (``jobs = runs``) than in sequence (``jobs = 1``), because one small run leaves
most of a GPU idle (kernel-launch bound).

Evidence: wall-clock of the whole sweep in each mode, process start-up and data loading
included (they are part of what a user waits for); both modes write real run folders and
their final metrics are compared run by run (packing must not change results: on CPU with
``--same-threads`` they are equal bit for bit; with different thread counts, or on CUDA with
non-deterministic kernels, up to float reduction order). Prints one JSON object.

On CUDA, NVIDIA MPS (``nvidia-cuda-mps-control -d``) lets the packed processes' kernels run
concurrently instead of time-sliced; the benchmark reports whether it found MPS running.

    python benchmarks/bench_packing.py                          # CPU, digits, 2 runs
    python benchmarks/bench_packing.py --device cuda --dataset mnist10k --runs 8
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import tempfile
import time

import torch


def base_config(args: argparse.Namespace, threads: int | None):
    """The small PGD-AT run every packed job trains (only the seed differs)."""
    from robmem.empirics.config import TrainConfig

    return TrainConfig(
        dataset=args.dataset, model=args.model, method="pgd", epsilon=args.epsilon,
        attack_steps=10, attack_step_size=args.epsilon / 4, epochs=args.epochs,
        batch_size=args.batch_size, optimizer="adam", lr=1e-3, schedule="constant",
        n_train=args.n_train, n_test=args.n_test, eval_train_size=min(args.n_train or 512, 512),
        eval_attack_steps=10, device=args.device, num_threads=threads, weight_decay=0.0,
    )  # fmt: skip


def _sweep(base, seeds: list[int], out: pathlib.Path, jobs: int) -> tuple[float, list]:
    from robmem.bridge.sweep import run_sweep, sweep_runs

    runs = sweep_runs(base, {"seed": seeds}, out)
    t0 = time.perf_counter()
    outcomes = run_sweep(runs, jobs=jobs)
    return time.perf_counter() - t0, outcomes


def _mps_running() -> bool:
    pipe = pathlib.Path(os.environ.get("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nvidia-mps"))
    return (pipe / "control").exists()


def run(args: argparse.Namespace) -> dict:
    cuda = args.device.startswith("cuda")
    cores = os.cpu_count() or 1
    # On CPU, split the cores between packed workers (no oversubscription); the sequential
    # sweep gets all of them.
    packed_threads = None if cuda else max(1, cores // args.runs)
    seq_threads = None if cuda else (packed_threads if args.same_threads else cores)
    seeds = list(range(args.runs))
    with tempfile.TemporaryDirectory(prefix="bench_packing_") as tmp:
        root = pathlib.Path(tmp)
        t_seq, seq = _sweep(base_config(args, seq_threads), seeds, root / "seq", 1)
        t_pack, pack = _sweep(base_config(args, packed_threads), seeds, root / "pack", args.runs)
    failed = [o.name + ": " + o.error for o in [*seq, *pack] if o.status == "failed"]
    keys = ("train_robust_acc", "test_robust_acc", "test_clean_acc", "train_objective")
    diffs = [
        abs(a.final[k] - b.final[k])
        for a, b in zip(seq, pack, strict=True)
        for k in keys
        if a.final.get(k) is not None and b.final.get(k) is not None
    ]
    return {
        "benchmark": "bench_packing",
        "claim": "a sweep of small AT runs packed on one device vs run in sequence",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if cuda else "cpu",
        "torch": torch.__version__,
        "cpu_cores": cores,
        "threads_sequential": seq_threads,
        "threads_packed": packed_threads,
        "mps_running": _mps_running() if cuda else None,
        "runs": args.runs,
        "config": base_config(args, packed_threads).to_dict(),
        "sequential_s": t_seq,
        "packed_s": t_pack,
        "speedup_packed_vs_sequential": t_seq / t_pack,
        "runs_per_hour_sequential": 3600 * args.runs / t_seq,
        "runs_per_hour_packed": 3600 * args.runs / t_pack,
        "max_abs_metric_difference_seq_vs_packed": max(diffs) if diffs else None,
        "metrics_compared": len(diffs),
        "failed": failed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--runs", type=int, default=2, help="runs packed together (>= 2)")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epsilon", type=float, default=0.1, help="ℓ∞ radius, pixel units")
    parser.add_argument("--n-train", type=int, default=None, help="training examples kept")
    parser.add_argument("--n-test", type=int, default=None, help="test examples kept")
    parser.add_argument(
        "--same-threads", action="store_true",
        help="CPU: give the sequential runs the packed runs' thread count (then their metrics "
        "must be equal bit for bit; by default sequential runs use every core, which changes "
        "float reduction order and can move a metric by one example)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.runs < 2:
        parser.error(f"--runs must be >= 2, got {args.runs}")
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be >= 1")
    if not 0 <= args.epsilon <= 1:
        parser.error(f"--epsilon must be in [0, 1], got {args.epsilon}")
    try:
        base_config(args, None)
    except ValueError as exc:
        parser.error(str(exc))
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
