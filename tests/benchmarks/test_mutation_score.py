"""benchmarks/mutation_score.py: mutants are valid and distinct; listed equivalents exist."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "mutation_score.py"


def load_benchmark(name: str):
    """The script as a module, registered in sys.modules (its dataclasses need that)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_mutants_are_valid_distinct_and_listed_equivalents_are_current():
    mod = load_benchmark("mutation_score")
    listed = mod.read_equivalents()
    assert len(listed) >= 40 and all(reason for reason in listed.values())
    generated = set()
    for name, target in mod.TARGETS.items():
        source, mutants = mod.collect(target)
        idents = [m.ident for m in mutants]
        assert len(idents) == len(set(idents)) and len(idents) > 30, name
        generated |= set(idents)
        for m in mutants[:: max(1, len(mutants) // 25)]:  # every mutant parses (apply checks)
            assert mod.apply(source, m) != source
    stale = set(listed) - generated
    assert not stale, stale  # an entry for a mutant the tool no longer generates


def test_list_flag_prints_the_mutants(capsys):
    mod = load_benchmark("mutation_score")
    assert mod.main(["--target", "losses", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) > 50 and all(line.startswith("losses\tL") for line in lines)
