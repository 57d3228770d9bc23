"""Does bf16 autocast weaken PGD? Robust accuracy under fp32 vs bf16 attacks on the same model.

Claim checked (issue 6: "bf16 autocast — check attack strength is unchanged against an fp32
attack on the same model"): two models are adversarially trained (PGD-AT) with the same
config and seed, one in fp32 and one with the speed options (bf16 autocast, plus
channels_last on CUDA). Each is then attacked on the test set by the same PGD (same steps,
step size and random starts, from one seeded generator) run once in fp32 and once under bf16
autocast. Reported per model: robust accuracy under each attack, their difference, the
number of test points whose verdict differs, and the binomial standard error of the fp32
robust accuracy (a difference within about 2 SE is not distinguishable at this n).

Reading it: "attack strength unchanged" means the bf16 attack's robust accuracy is not
higher than the fp32 attack's beyond noise (a weaker attack would *overstate* robustness);
"training unchanged" means the bf16-trained model's fp32-attack robust accuracy is close to
the fp32-trained one's. A model whose clean accuracy is not above the majority-class rate is
flagged ``trivial_model`` (e.g. PGD-AT at ε = 0.3 that never left chance): both attacks then
agree for a vacuous reason. Prints one JSON object.

    python benchmarks/bf16_attack_strength.py                       # CPU, digits, MLP
    python benchmarks/bf16_attack_strength.py --device cuda --dataset mnist10k --model lenet5 \\
        --epsilon 0.1 --epochs 10
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
import tempfile

import torch

#: Clean accuracy within this of the majority-class rate marks a model as trivial (accuracy
#: units; 1 point).
TRIVIAL_MARGIN = 0.01


def _train(args: argparse.Namespace, precision: str, channels_last: bool, root: pathlib.Path):
    from robmem.empirics.config import TrainConfig
    from robmem.empirics.models import build_model
    from robmem.empirics.trainers import train

    config = TrainConfig(
        dataset=args.dataset, model=args.model, method="pgd", epsilon=args.epsilon,
        attack_steps=10, attack_step_size=args.epsilon / 4, epochs=args.epochs,
        batch_size=args.batch_size, optimizer="adam", lr=1e-3, schedule="constant",
        weight_decay=0.0, n_test=args.n_test, eval_every=args.epochs, eval_train_size=256,
        eval_attack_steps=args.eval_steps, device=args.device, precision=precision,
        channels_last=channels_last, seed=args.seed,
    )  # fmt: skip
    result = train(config, root / f"{precision}{'-cl' if channels_last else ''}", progress=False)
    from robmem.empirics.checkpoint import load_checkpoint
    from robmem.empirics.trainers import prepare_data

    data = prepare_data(config)  # the run's own split
    device = torch.device(args.device)
    model = build_model(config.model, data.num_classes, data.in_shape).to(device)
    model.load_state_dict(load_checkpoint(result.last_checkpoint, map_location=device)["model"])
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model.eval(), data, config


def robust_verdicts(
    model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    steps: int,
    amp_dtype: torch.dtype | None,
    channels_last: bool,
    seed: int,
    batch_size: int,
) -> torch.Tensor:
    """Boolean per test point: still correct (fp32 forward, no autocast) after the PGD attack."""
    from robmem.empirics.attacks import PGD, correct_under_attack

    gen = torch.Generator(device=x.device).manual_seed(seed)
    attack = PGD(
        eps, eps / 4, steps, random_start=True, generator=gen, amp_dtype=amp_dtype,
        channels_last=channels_last,
    )  # fmt: skip
    return correct_under_attack(model, attack, x, y, batch_size=batch_size)


def run(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    models = {"trained_fp32": ("fp32", False), "trained_bf16": ("bf16", cuda)}
    report: dict = {
        "benchmark": "bf16_attack_strength",
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if cuda else "cpu",
        "torch": torch.__version__,
        "dataset": args.dataset,
        "model": args.model,
        "epsilon": args.epsilon,
        "epochs": args.epochs,
        "eval_pgd_steps": args.eval_steps,
        "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="bf16_strength_") as tmp:
        for name, (precision, cl) in models.items():
            model, data, _ = _train(args, precision, cl, pathlib.Path(tmp))
            x = data.test_x.to(device)
            y = data.test_y.to(device)
            n = len(y)
            common = dict(eps=args.epsilon, steps=args.eval_steps, seed=args.seed + 1,
                          batch_size=512, channels_last=cl)  # fmt: skip
            v32 = robust_verdicts(model, x, y, amp_dtype=None, **common)
            v16 = robust_verdicts(model, x, y, amp_dtype=torch.bfloat16, **common)
            a32, a16 = float(v32.float().mean()), float(v16.float().mean())
            with torch.no_grad():
                clean = float((model(x).float().argmax(1) == y).float().mean())
            majority = float(torch.bincount(y).max()) / n
            report["models"][name] = {
                "training_precision": precision,
                "channels_last": cl,
                "n_test": n,
                "clean_acc": clean,
                "robust_acc_fp32_attack": a32,
                "robust_acc_bf16_attack": a16,
                "bf16_minus_fp32": a16 - a32,
                "verdicts_differing": int((v32 != v16).sum()),
                "standard_error_fp32": math.sqrt(max(a32 * (1 - a32), 1e-12) / n),
                "majority_class_rate": majority,
                # A model no better than the majority class (training failed to start) makes
                # both attacks trivially equal: the comparison then says nothing.
                "trivial_model": clean <= majority + TRIVIAL_MARGIN,
            }
    m = report["models"]
    report["training_bf16_minus_fp32_under_fp32_attack"] = (
        m["trained_bf16"]["robust_acc_fp32_attack"] - m["trained_fp32"]["robust_acc_fp32_attack"]
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--epsilon", type=float, default=0.1, help="ℓ∞ radius, pixel units")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--eval-steps", type=int, default=20, help="steps of the checking PGD")
    parser.add_argument("--n-test", type=int, default=None, help="test points (None = all)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if not 0 < args.epsilon <= 1:
        parser.error(f"--epsilon must be in (0, 1], got {args.epsilon}")
    if args.epochs < 1 or args.batch_size < 1 or args.eval_steps < 1:
        parser.error("--epochs, --batch-size and --eval-steps must be >= 1")
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
