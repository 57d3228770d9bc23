"""Load a script of ``benchmarks/`` as a fresh module (the folder is not a package)."""

from __future__ import annotations

import importlib.util
import pathlib
import types

BENCHMARKS = pathlib.Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> types.ModuleType:
    """Return ``benchmarks/<name>.py`` executed as a new module named ``name``."""
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
