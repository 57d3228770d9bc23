#!/usr/bin/env bash
# Issue 6 on a lent GPU: one part per device `run` call (each call may take at most 10 min;
# a session has 30 min of device time, machine start-up included). Every part writes JSON
# (or a report) under $OUT, which the device tool copies back.
#
# Prepare on the dev machine (the GPU machine cannot see ../shared):
#     mkdir -p data_local && cp -r ../shared/data/mnist-test-10k data_local/
# Then, in this order (most important first), with carry=["data_local"]:
#     bash benchmarks/gpu_session.sh probe     # ~1 min: versions, imports, a tiny CUDA smoke
#     bash benchmarks/gpu_session.sh prn18     # ~5 min: PreActResNet-18, all variants
#     bash benchmarks/gpu_session.sh prn18-large  # batch 1024 (linear lr scaling is a flag)
#     bash benchmarks/gpu_session.sh wrn       # ~5 min: WRN-34-10, fp32 / bf16-cl / compile
#     bash benchmarks/gpu_session.sh bf16      # ~1 min: bf16 vs fp32 attack strength
#     bash benchmarks/gpu_session.sh packing   # ~2 min: 8 LeNet-5 runs packed vs sequential
#     bash benchmarks/gpu_session.sh attacks   # ~1 min: attack-only speed vs torchattacks
#     bash benchmarks/gpu_session.sh claims    # the rest: cpu-tier E1-E4 trained on the GPU
# The GPU image has torch, torchvision, sympy, hypothesis and matplotlib; `probe` reports
# which optional packages (scipy, torchattacks, tqdm, pandas) are missing there. Without
# torchattacks, bench_at_epoch falls back to its tested restatement of torchattacks.PGD.
set -euo pipefail
part="${1:?usage: gpu_session.sh probe|prn18|wrn|bf16|packing|attacks|claims}"
cd "$(dirname "$0")/.."
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
export ROBMEM_MNIST_DIR="${ROBMEM_MNIST_DIR:-$PWD/data_local/mnist-test-10k}"
OUT="${OUT:-gpu_out}"
mkdir -p "$OUT"
py="${PYTHON:-python}"

case "$part" in
probe)
  nvidia-smi | tee "$OUT/nvidia-smi.txt" || true
  "$py" - <<'EOF' | tee "$OUT/probe.json"
import importlib, json, platform, sys
import torch
mods = {}
for name in ("torchvision", "numpy", "scipy", "sklearn", "pandas", "tqdm", "torchattacks",
             "matplotlib", "sympy", "hypothesis", "cvxpy", "triton", "pytest"):
    try:
        mods[name] = getattr(importlib.import_module(name), "__version__", "present")
    except Exception as exc:  # noqa: BLE001
        mods[name] = f"missing ({type(exc).__name__})"
info = {
    "python": sys.version.split()[0], "platform": platform.platform(),
    "torch": torch.__version__, "cuda": torch.version.cuda,
    "cuda_available": torch.cuda.is_available(),
    "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    "modules": mods,
}
import robmem.empirics.idx as idx
info["mnist_dir"] = str(idx.default_mnist_test_dir())
print(json.dumps(info, indent=1))
EOF
  timeout 300 "$py" benchmarks/bench_at_epoch.py --device cuda --model lenet5 --train-size 2048 \
    --batch-size 256 --iters 3 --warmup 2 --torchattacks all \
    --variants fp32,bf16-cl,bf16-cl-compile,bf16-cl-cudagraphs \
    --out "$OUT/smoke_at_epoch.json"
  ;;
prn18)
  timeout 580 "$py" benchmarks/bench_at_epoch.py --device cuda --model preactresnet18 \
    --batch-size 512 --torchattacks all \
    --out "$OUT/at_epoch_prn18_b512.json"
  ;;
prn18-large)
  timeout 580 "$py" benchmarks/bench_at_epoch.py --device cuda --model preactresnet18 \
    --batch-size 1024 --variants bf16-cl,bf16-cl-compile --torchattacks none \
    --out "$OUT/at_epoch_prn18_b1024.json"
  ;;
wrn)
  timeout 580 "$py" benchmarks/bench_at_epoch.py --device cuda --model wrn-34-10 \
    --batch-size 256 --iters 10 --warmup 3 --variants fp32,bf16-cl,bf16-cl-compile \
    --torchattacks baseline \
    --out "$OUT/at_epoch_wrn34_10_b256.json"
  ;;
bf16)
  timeout 580 "$py" benchmarks/bf16_attack_strength.py --device cuda --dataset mnist10k \
    --model lenet5 --epsilon 0.1 --epochs 10 > "$OUT/bf16_attack_strength.json"
  cat "$OUT/bf16_attack_strength.json"
  ;;
packing)
  timeout 580 "$py" benchmarks/bench_packing.py --device cuda --dataset mnist10k --runs 8 \
    --epochs 2 > "$OUT/packing.json"
  cat "$OUT/packing.json"
  ;;
attacks)
  # Without torchattacks, bench_attacks times its restated torchattacks.PGD (named in JSON).
  timeout 580 "$py" benchmarks/bench_attacks.py --device cuda --model preactresnet18 \
    --shape 3,32,32 --batch 512 --precision bf16 --channels-last > "$OUT/attacks_prn18.json"
  cat "$OUT/attacks_prn18.json"
  ;;
claims)
  timeout 590 "$py" -m robmem.bridge.cli report --tier cpu --device cuda --claims E1,E2,E3,E4 \
    --out "$OUT/report_cpu_tier_on_gpu" --cache-dir "$OUT/cache" || true
  ls "$OUT/report_cpu_tier_on_gpu" || true
  ;;
*)
  echo "unknown part: $part" >&2
  exit 2
  ;;
esac
