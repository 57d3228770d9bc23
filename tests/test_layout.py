"""The dependency direction of the layout: theory <- empirics <- bridge."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = {"theory": {"empirics", "bridge"}, "empirics": {"bridge"}}


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_downstream(package: str) -> None:
    for path in (ROOT / package).rglob("*.py"):
        bad = _imports(path) & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_import_theory_does_not_pull_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, importlib, pkgutil, theory\n"
        "for m in pkgutil.walk_packages(theory.__path__, 'theory.'):\n"
        "    if m.name.endswith('_torch'): continue\n"
        "    importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'torch imported by theory'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
