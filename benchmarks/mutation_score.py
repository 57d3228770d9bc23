"""Mutation testing of the soundness-critical code (issue 13 item 6): a score, as JSON.

A small AST mutator of our own (mutmut's whole-tree runs and its per-file test selection
did not fit a 2-core CI box). It applies one mutation at a time to one file, runs that
file's fast targeted tests on a private copy of the repository, and prints

    {"target": ..., "mutants": N, "killed": K, "timeout": T, "survived": [...],
     "equivalent": [...], "not_run": R, "score": (K + T) / (N − E − R), ...}

A mutant is *killed* when the tests fail (``pytest -x``), *timeout* when they run past
``timeout_factor`` × the unmutated run (counted as detected), *survived* otherwise. A
surviving mutant listed in ``benchmarks/results/mutation_equivalents.md`` (one line each:
``` `ID` — why it cannot change any result ```) counts as *equivalent* and leaves the
denominator. The working tree is never modified: each mutant is written into a copy under
a temporary folder, and the tests run in a forked child that imports the copy.

Usage (from the repository root, inside the project's venv)::

    python benchmarks/mutation_score.py --target certify            # one target
    python benchmarks/mutation_score.py --target all --budget-s 7200
    python benchmarks/mutation_score.py --target certify --list     # the mutants only
    python benchmarks/mutation_score.py --target attacks --only 'PGD._step | …'

Operators: arithmetic swaps (+ −, * /, ** → *), dropping the right operand of + and −,
comparison boundary and negation flips, and/or, removing unary minus and ``not``, numeric
constants (0 ↔ 1, n → n + 1, x → 2x), True ↔ False, max/min-type call swaps
(np.maximum/np.minimum, .max/.min, argmax/argmin, amax/amin, clamp_min/clamp_max,
any/all), += ↔ −=. Not mutated: docstrings and strings, ``raise`` statements, logging calls,
annotations, and the bodies listed in a target's ``skip`` (argument checks, plain
bookkeeping: see TARGETS).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import pathlib
import re
import shutil
import signal
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
EQUIVALENTS = REPO / "benchmarks" / "results" / "mutation_equivalents.md"
#: A mutant's tests may run this many times as long as the unmutated run, plus the slack,
#: before it counts as a timeout (an infinite loop, or a pathologically slow MILP).
TIMEOUT_FACTOR = 3.0
TIMEOUT_SLACK_S = 20.0


@dataclasses.dataclass(frozen=True)
class Target:
    """One file to mutate, the tests that must catch its mutants, and what to leave out."""

    path: str
    tests: tuple[str, ...]
    #: qualified names (``Class.method`` or ``function``) to mutate; empty = all
    only: tuple[str, ...] = ()
    #: qualified names not to mutate (argument validation, bookkeeping)
    skip: tuple[str, ...] = ()
    #: the subset run per mutant (default: ``tests``); ``tests`` stay the full list
    tests_fast: tuple[str, ...] = ()
    #: heavy imports the parent process loads once before forking (speed only)
    preload: tuple[str, ...] = ("numpy", "scipy.sparse", "scipy.optimize", "hypothesis")


_THEORY_PRELOAD = ("numpy", "scipy.sparse", "scipy.optimize", "hypothesis", "sympy")
_TORCH_PRELOAD = ("numpy", "torch", "torch.nn.functional", "hypothesis", "torchattacks")
# the certifier (theory/intervals, milp, certificates, certify); fast, targeted tests first:
# -x stops at the first failing test. <module>: tolerances and performance knobs
# (MARGIN_TOLERANCE, MILP_TIME_LIMIT_S, …; scaling a threshold only moves the UNKNOWN band,
# tested by name in the tests)
_CERTIFY_TESTS = (
    "tests/theory/test_rounding_allowances.py",
    "tests/theory/test_structural_allowances.py",
    "tests/theory/test_certify_mutants.py",
    "tests/theory/test_float_rounding.py",
    "tests/theory/test_certify_negative.py",
    "tests/theory/test_certify.py",
    "tests/theory/test_construction.py",
    "tests/theory/test_fuzz.py",
)
_CERTIFY = dict(tests_fast=_CERTIFY_TESTS[:-1], preload=_THEORY_PRELOAD)

TARGETS: dict[str, Target] = {
    "intervals": Target("theory/intervals.py", _CERTIFY_TESTS, skip=("<module>",), **_CERTIFY),
    "milp": Target("theory/milp.py", _CERTIFY_TESTS, skip=("<module>",), **_CERTIFY),
    # CertificationResult: reporting properties
    "certificates": Target(
        "theory/certificates.py",
        _CERTIFY_TESTS,
        skip=("<module>", "_check_radius", "CertificationResult"),
        **_CERTIFY,
    ),
    # certify_outside_balls: property (b), a falsification check with its own tests
    # (test_construction, test_certify)
    "certify": Target(
        "theory/certify.py", _CERTIFY_TESTS, skip=("<module>", "certify_outside_balls"), **_CERTIFY
    ),
    "construction": Target(
        "theory/construction.py",
        (
            "tests/theory/test_certify_negative.py",
            "tests/theory/test_construction.py",
            "tests/theory/test_certify.py",
            "tests/theory/test_counting.py",
            "tests/theory/test_strategies.py",
        ),
        skip=("_encode_labels",),
        preload=_THEORY_PRELOAD,
    ),
    "gadgets": Target(
        "theory/gadgets.py",
        (
            "tests/theory/test_gadgets.py",
            "tests/theory/test_proofs.py",
            "tests/theory/test_certify_negative.py",
            "tests/theory/test_construction.py",
            "tests/theory/test_counting.py",
        ),
        preload=_THEORY_PRELOAD,
    ),
    "attacks": Target(
        "empirics/attacks.py",
        # the fast file first: -x stops at the first failure
        (
            "tests/empirics/test_loss_gradients.py",
            "tests/empirics/test_attack_semantics.py",
            "tests/empirics/test_attacks.py",
        ),
        # the PGD family (PGD, FGSM, FGSM-RS, TRADES) and its helpers; argument and batch
        # validation (bad-input tests) and the exact linear attack (its own closed-form
        # tests, not a training attack) are left out
        only=(
            "margin_cross_entropy",
            "trades_kl",
            "_per_sample",
            "attack_mode",
            "Attack.__call__",
            "_box",
            "_flat_norm",
            "_random_start",
            "_draw",
            "_Best",
            "select_worst_case",
            "PGD",
            "FGSM",
            "FGSMRS",
            "TradesPGD",
        ),
        skip=(
            "norm_name",
            "_check_eps",
            "_check_alpha",
            "_check_count",
            "_check_bounds",
            "check_batch",
            "check_labels_fit",
            "_check_generator_device",
            "Attack.__repr__",
        ),
        preload=_TORCH_PRELOAD,
    ),
    "losses": Target(
        "empirics/methods.py",
        ("tests/empirics/test_loss_gradients.py", "tests/empirics/test_trainers.py"),
        tests_fast=("tests/empirics/test_loss_gradients.py",),
        only=(
            "te_rampup",
            "te_weight",
            "te_penalty",
            "TEBank.__init__",
            "TEBank.update",
            "_kl_per_sample",
            "_te_attack_loss",
            "_trades_te_attack_loss",
            "_clean_loss",
            "_adversarial_loss",
            "_trades_loss",
            "_pgd_attack",
            "_fgsm_rs_attack",
            "_trades_attack",
            "method_step",
        ),
        preload=_TORCH_PRELOAD,
    ),
}


# ----------------------------------------------------------------------------- mutants
@dataclasses.dataclass
class Mutant:
    ident: str
    line: int
    start: tuple[int, int]
    end: tuple[int, int]
    replacement: str


_BINOP_SWAPS = {
    ast.Add: [ast.Sub],
    ast.Sub: [ast.Add],
    ast.Mult: [ast.Div],
    ast.Div: [ast.Mult],
    ast.Pow: [ast.Mult],
    ast.FloorDiv: [ast.Div],
}
_CMP_SWAPS = {
    ast.Lt: [ast.LtE, ast.GtE],
    ast.LtE: [ast.Lt, ast.Gt],
    ast.Gt: [ast.GtE, ast.LtE],
    ast.GtE: [ast.Gt, ast.Lt],
    ast.Eq: [ast.NotEq],
    ast.NotEq: [ast.Eq],
    ast.Is: [ast.IsNot],
    ast.IsNot: [ast.Is],
    ast.In: [ast.NotIn],
    ast.NotIn: [ast.In],
}
_NAME_SWAPS = {
    "maximum": "minimum",
    "minimum": "maximum",
    "max": "min",
    "min": "max",
    "argmax": "argmin",
    "argmin": "argmax",
    "amax": "amin",
    "amin": "amax",
    "clamp_min": "clamp_max",
    "clamp_max": "clamp_min",
    "any": "all",
    "all": "any",
}


def _qualname(stack: list[ast.AST]) -> str:
    names = [n.name for n in stack if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    return ".".join(names) or "<module>"


class _Collector(ast.NodeVisitor):
    def __init__(self, source: str, target: Target):
        self.source = source
        self.target = target
        self.stack: list[ast.AST] = []
        self.mutants: list[Mutant] = []
        self.seen: dict[str, int] = {}

    # -- scope
    def _active(self) -> bool:
        q = _qualname(self.stack)
        if q == "<module>" and "<module>" in self.target.skip:
            return False
        if any(q == s or q.startswith(s + ".") for s in self.target.skip):
            return False
        if self.target.only:
            return any(q == s or q.startswith(s + ".") for s in self.target.only)
        return True

    def generic_visit(self, node: ast.AST) -> None:
        self.stack.append(node)
        super().generic_visit(node)
        self.stack.pop()

    def visit_Raise(self, node: ast.Raise) -> None:  # messages and exception types only
        return

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return

    def visit_arguments(self, node: ast.arguments) -> None:  # defaults and annotations
        return

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.stack.append(node)
            self.visit(node.value)
            self.stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.stack.append(node)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # docstring
        for stmt in body:
            self.visit(stmt)
        self.stack.pop()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if func.value.id in ("logger", "logging", "warnings"):
                return
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name in _NAME_SWAPS and self._active():
            renamed = _renamed(func, _NAME_SWAPS[name])
            new = ast.Call(func=renamed, args=node.args, keywords=node.keywords)
            self._add(node, new, f"{name}->{_NAME_SWAPS[name]}")
        self.generic_visit(node)

    # -- operators
    def visit_BinOp(self, node: ast.BinOp) -> None:
        if self._active():
            for op in _BINOP_SWAPS.get(type(node.op), []):
                self._add(node, ast.BinOp(node.left, op(), node.right), type(op()).__name__)
            if isinstance(node.op, (ast.Add, ast.Sub)):
                self._add(node, node.left, "drop-right")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if self._active() and isinstance(node.op, (ast.Add, ast.Sub)):
            op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            self._add(node, ast.AugAssign(node.target, op, node.value), "augassign-swap")
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare) -> None:
        if self._active():
            for k, op in enumerate(node.ops):
                for new_op in _CMP_SWAPS.get(type(op), []):
                    ops = list(node.ops)
                    ops[k] = new_op()
                    new = ast.Compare(node.left, ops, node.comparators)
                    self._add(node, new, f"{type(op).__name__}->{new_op.__name__}")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        if self._active():
            op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
            self._add(node, ast.BoolOp(op, node.values), "and/or")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if self._active() and isinstance(node.op, (ast.USub, ast.Not)):
            self._add(node, node.operand, f"drop-{type(node.op).__name__}")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if not self._active():
            return
        v = node.value
        if isinstance(v, bool):
            self._add(node, ast.Constant(not v), "bool-flip")
        elif isinstance(v, int):
            self._add(node, ast.Constant(1 if v == 0 else (0 if v == 1 else v + 1)), "int")
        elif isinstance(v, float):
            self._add(node, ast.Constant(1.0 if v == 0 else 2.0 * v), "float")

    # -- bookkeeping
    def _add(self, node: ast.AST, new: ast.AST, op: str) -> None:
        old_src = ast.get_source_segment(self.source, node)
        if old_src is None:
            return
        new_src = ast.unparse(new)
        if isinstance(node, ast.AugAssign):
            text = new_src
        else:
            text = f"({new_src})"
        snippet = " ".join(old_src.split())
        if len(snippet) > 60:
            snippet = snippet[:57] + "..."
        key = f"{_qualname(self.stack)} | {op} | {snippet}"
        count = self.seen.get(key, 0)
        self.seen[key] = count + 1
        ident = key if count == 0 else f"{key} #{count + 1}"
        self.mutants.append(
            Mutant(
                ident,
                node.lineno,
                (node.lineno, node.col_offset),
                (node.end_lineno, node.end_col_offset),
                text,
            )
        )


def _renamed(func: ast.expr, name: str) -> ast.expr:
    if isinstance(func, ast.Attribute):
        return ast.Attribute(value=func.value, attr=name, ctx=func.ctx)
    return ast.Name(id=name, ctx=ast.Load())


def collect(target: Target, root: pathlib.Path = REPO) -> tuple[str, list[Mutant]]:
    source = (root / target.path).read_text()
    col = _Collector(source, target)
    col.visit(ast.parse(source))
    return source, col.mutants


def apply(source: str, m: Mutant) -> str:
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line.encode()))
    raw = source.encode()
    a = offsets[m.start[0] - 1] + m.start[1]
    b = offsets[m.end[0] - 1] + m.end[1]
    out = (raw[:a] + m.replacement.encode() + raw[b:]).decode()
    ast.parse(out)  # a mutant must stay valid Python
    return out


# ----------------------------------------------------------------------------- running
def _copy_repo(dest: pathlib.Path, rev: str | None = None) -> None:
    """The working tree (or, with ``rev``, that commit via ``git archive``) into ``dest``."""
    if rev is not None:
        import subprocess

        dest.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", rev], check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", ".hypothesis", ".pytest_cache", "runs", "*.egg-info"
    )
    for name in ("robmem", "theory", "empirics", "bridge", "tests", "benchmarks"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml",):
        shutil.copy2(REPO / name, dest / name)


def _run_tests(copy: pathlib.Path, tests: tuple[str, ...], timeout_s: float) -> tuple[str, float]:
    """Fork; the child runs pytest on the copy. Returns (outcome, seconds)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.chdir(copy)
            sys.path.insert(0, str(copy))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            import pytest

            code = pytest.main(
                ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow and not fuzz", *tests]
            )
            os._exit(int(code))
        except BaseException:
            os._exit(99)
    deadline = start + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.perf_counter() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "timeout", time.perf_counter() - start
        time.sleep(0.05)
    code = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if code == 0:
        return "survived", seconds
    if code == 1:
        return "killed", seconds
    return f"error({code})", seconds


def read_equivalents(path: pathlib.Path = EQUIVALENTS) -> dict[str, str]:
    """`ID` — reason, one per line (markdown list items allowed)."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        hit = re.match(r"^\s*(?:[-*]\s*)?`([^`]+)`\s*[—-]+\s*(.+)$", line)
        if hit:
            out[hit.group(1)] = hit.group(2).strip()
    return out


def run_target(
    name: str,
    budget_s: float,
    only: list[str] | None,
    resume: dict,
    *,
    rev: str | None = None,
    sample: int | None = None,
    seed: int = 0,
    shard: tuple[int, int] | None = None,
    tests_override: list[str] | None = None,
) -> dict:
    target = TARGETS[name]
    if tests_override:
        target = dataclasses.replace(target, tests=tuple(tests_override), tests_fast=())
    tmp_root = tempfile.mkdtemp(prefix="robmem-mut-")
    copy = pathlib.Path(tmp_root) / "repo"
    _copy_repo(copy, rev)
    source, mutants = collect(target, copy)
    if only:
        mutants = [m for m in mutants if m.ident in only]
    if shard is not None:
        k, n = shard
        mutants = mutants[k::n]
    if sample is not None and sample < len(mutants):
        import random

        mutants = sorted(random.Random(seed).sample(mutants, sample), key=lambda m: m.line)
    for module in target.preload:  # heavy imports once, inherited by every fork
        try:
            __import__(module)
        except ImportError:
            pass
    equivalents = read_equivalents()
    results: dict[str, dict] = {}
    start = time.perf_counter()
    try:
        mutated_file = copy / target.path
        tests = target.tests_fast or target.tests
        baseline, base_s = _run_tests(copy, tests, 3600.0)
        if baseline != "survived":
            raise SystemExit(f"{name}: the unmutated tests do not pass ({baseline})")
        timeout_s = TIMEOUT_FACTOR * base_s + TIMEOUT_SLACK_S
        for m in mutants:
            if m.ident in resume:
                results[m.ident] = resume[m.ident]
                continue
            if time.perf_counter() - start > budget_s:
                results[m.ident] = {"outcome": "not_run", "line": m.line}
                continue
            try:
                mutated_file.write_text(apply(source, m))
            except SyntaxError:
                results[m.ident] = {"outcome": "invalid", "line": m.line}
                continue
            outcome, seconds = _run_tests(copy, tests, timeout_s)
            results[m.ident] = {"outcome": outcome, "line": m.line, "seconds": round(seconds, 2)}
            print(f"[{name}] {outcome:9s} {seconds:6.1f}s  L{m.line}  {m.ident}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)
    report = summarise(name, target, results, equivalents, base_s, time.perf_counter() - start)
    report["revision"] = rev or "working tree"
    report["sample"] = sample
    return report


def summarise(name, target, results, equivalents, base_s, seconds) -> dict:
    by = {}
    for ident, r in results.items():
        by.setdefault(r["outcome"], []).append(ident)
    survived = sorted(by.get("survived", []))
    equivalent = [i for i in survived if i in equivalents]
    live = [i for i in survived if i not in equivalents]
    killed = len(by.get("killed", []))
    timeout = len(by.get("timeout", []))
    errors = sorted(i for k, v in by.items() if k.startswith("error") for i in v)
    not_run = len(by.get("not_run", []))
    invalid = len(by.get("invalid", []))
    decided = len(results) - not_run - invalid - len(equivalent)
    return {
        "target": name,
        "file": target.path,
        "tests": list(target.tests_fast or target.tests),
        "mutants": len(results),
        "killed": killed,
        "timeout": timeout,
        "errors": errors,
        "survived": live,
        "equivalent": equivalent,
        "invalid": invalid,
        "not_run": not_run,
        # errors (a crash of the test run itself, e.g. an import-time failure) count as
        # detected: the mutated code could not even be imported and tested
        "score": round((killed + timeout + len(errors)) / decided, 4) if decided else None,
        "baseline_seconds": round(base_s, 1),
        "seconds": round(seconds, 1),
        "outcomes": {i: r["outcome"] for i, r in sorted(results.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="certify", choices=[*TARGETS, "all"])
    parser.add_argument("--budget-s", type=float, default=3600.0, help="per target, seconds")
    parser.add_argument("--list", action="store_true", help="print the mutants and exit")
    parser.add_argument("--only", action="append", help="run only this mutant ID (repeatable)")
    parser.add_argument(
        "--resume",
        type=pathlib.Path,
        action="append",
        default=[],
        help="previous JSON (repeatable, e.g. the shards): keep their outcomes",
    )
    parser.add_argument("--out", type=pathlib.Path, help="also write the JSON here")
    parser.add_argument("--rev", help="mutate and test this git revision instead (git archive)")
    parser.add_argument("--sample", type=int, help="a seeded random sample of this many mutants")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample")
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="with --resume: run its survivors again (except those listed as equivalent)",
    )
    parser.add_argument("--shard", help="K/N: run every N-th mutant from the K-th (0-based)")
    parser.add_argument(
        "--tests", nargs="+", help="run these test files instead of the target's (e.g. with --rev)"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    names = list(TARGETS) if args.target == "all" else [args.target]
    if args.list:
        for name in names:
            for m in collect(TARGETS[name])[1]:
                print(f"{name}\tL{m.line}\t{m.ident}")
        return 0
    previous = {}
    listed = read_equivalents()  # --rerun-survivors skips survivors argued equivalent
    for path in args.resume:
        old = json.loads(path.read_text())
        for rep in old if isinstance(old, list) else [old]:
            for ident, outcome in rep.get("outcomes", {}).items():
                rerun = args.rerun_survivors and outcome == "survived" and ident not in listed
                if outcome not in ("not_run", "invalid") and not rerun:
                    previous[ident] = {"outcome": outcome, "line": 0}
    if args.shard and len(names) > 1:
        parser.error("--shard needs one --target")
    reports = [
        run_target(
            n,
            args.budget_s,
            args.only,
            previous,
            rev=args.rev,
            sample=args.sample,
            seed=args.seed,
            shard=tuple(int(v) for v in args.shard.split("/")) if args.shard else None,
            tests_override=args.tests,
        )
        for n in names
    ]
    text = json.dumps(reports if len(reports) > 1 else reports[0], indent=1, ensure_ascii=False)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
