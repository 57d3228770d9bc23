"""The layout: theory <- empirics <- bridge, no import cycles, one installed namespace."""

import ast
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "empirics", "bridge")
FORBIDDEN = {"theory": {"empirics", "bridge"}, "empirics": {"bridge"}}


def _sources(*folders: str) -> list[pathlib.Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _imported_modules(path: pathlib.Path) -> list[str]:
    """Absolute module names imported anywhere in ``path`` (also inside functions)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_downstream(package: str) -> None:
    for path in _sources(package):
        used = {n.split(".")[1] for n in _imported_modules(path) if n.startswith("robmem.")}
        bad = used & FORBIDDEN[package]
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_nothing_imports_the_folders_as_top_level_packages() -> None:
    folders = (*PACKAGES, "benchmarks", "tests", "robmem")
    bad = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _sources(*folders)
        for name in _imported_modules(path)
        if name.split(".")[0] in PACKAGES
    ]
    assert not bad, "import robmem.<package>, not the bare folder: " + "; ".join(bad)


def test_theory_never_imports_torch_outside_torch_modules() -> None:
    bad = [
        str(path.relative_to(ROOT))
        for path in _sources("theory")
        if not path.stem.endswith("_torch")
        and any(n.split(".")[0] == "torch" for n in _imported_modules(path))
    ]
    assert not bad, f"torch imported (maybe inside a function) by {bad}"


def test_import_theory_does_not_pull_torch() -> None:
    code = (
        "import sys, importlib, pkgutil, robmem.theory\n"
        "for m in pkgutil.walk_packages(robmem.theory.__path__, 'robmem.theory.'):\n"
        "    if m.name.endswith('_torch'): continue\n"
        "    importlib.import_module(m.name)\n"
        "assert 'torch' not in sys.modules, 'torch imported by theory'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.parametrize("package", PACKAGES)
def test_bare_folder_import_fails_even_from_the_repository_root(package: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", f"import {package}"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert f"import robmem.{package}" in result.stderr


def test_packaging_maps_every_folder_under_robmem() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    setup = config["tool"]["setuptools"]
    folders = {
        ".".join(d.relative_to(ROOT).parts)
        for package in PACKAGES
        for d in [ROOT / package, *(ROOT / package).rglob("*")]
        if (d / "__init__.py").is_file()
    }
    assert set(setup["packages"]) == {"robmem", *(f"robmem.{f}" for f in folders)}
    assert setup["package-dir"] == {
        "robmem": "robmem",
        **{f"robmem.{f}": f.replace(".", "/") for f in folders},
    }
    assert config["project"]["scripts"] == {"robmem": "robmem.bridge.cli:main"}


def _module_graph() -> dict[str, set[str]]:
    """Imports (also inside functions) between the modules of robmem.theory/empirics/bridge."""
    paths = {}
    for path in _sources(*PACKAGES):
        parts = path.relative_to(ROOT).with_suffix("").parts
        paths[".".join(["robmem", *(parts[:-1] if parts[-1] == "__init__" else parts)])] = path
    graph: dict[str, set[str]] = {name: set() for name in paths}
    for name, path in paths.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # `from pkg import submodule` imports the submodule
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in paths else base for a in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in paths:  # `import a.b.c` of a non-module c
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        top = stack.pop()
                        on_stack.discard(top)
                        component.append(top)
                        if top == node:
                            break
                    components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def test_no_import_cycles() -> None:
    graph = _module_graph()
    assert {"robmem.theory.network", "robmem.empirics.attacks", "robmem.bridge.cli"} <= graph.keys()
    assert _strongly_connected({"a": {"b"}, "b": {"a", "c"}, "c": set()}) == [["c"], ["a", "b"]]
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.slow
def test_the_wheel_installs_only_the_robmem_namespace(tmp_path: pathlib.Path) -> None:
    """``pip wheel .``: only robmem/ and its dist-info; installed, robmem.* imports, theory not."""
    pytest.importorskip("setuptools")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        check=True, cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = wheels.glob("robmem-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"robmem"}, tops
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    code = (
        "import robmem, robmem.theory, robmem.empirics, robmem.bridge\n"
        f"assert robmem.theory.__file__.startswith({str(target)!r}), robmem.theory.__file__\n"
        "assert len(robmem.__path__) == 1, robmem.__path__\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, env=env)
    bare = subprocess.run(
        [sys.executable, "-c", "import theory"], cwd=tmp_path, env=env, capture_output=True
    )
    assert bare.returncode != 0


def test_robmem_reexports_its_entry_points_lazily() -> None:
    code = (
        "import importlib, sys, robmem\n"
        "assert 'torch' not in sys.modules\n"
        "for name, module in robmem._EXPORTS.items():\n"
        "    assert getattr(robmem, name) is getattr(importlib.import_module(module), name)\n"
        "import robmem.theory.pipeline, robmem.empirics.trainers\n"
        "assert robmem.train is robmem.empirics.trainers.train\n"
        "assert robmem.construct_and_certify is robmem.theory.pipeline.construct_and_certify\n"
        "try:\n"
        "    robmem.nothing\n"
        "except AttributeError as e:\n"
        "    assert 'nothing' in str(e)\n"
        "else:\n"
        "    raise SystemExit('robmem.nothing resolved')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
